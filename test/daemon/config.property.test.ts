// Hostile input for the configuration: satroute.json holding any bytes, any JSON, any value
// for each key, and environment variables holding anything. loadConfig gives a config whose
// values are all usable, or one ConfigError line naming the file (or variable) and the key -
// never a stack trace, a raw ZodError or a hang.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { ConfigError, loadConfig, saveConfigFile } from '../../daemon/config.ts';
import { MAX_CONFIG_BYTES, VALUE_CHECKS } from '../../daemon/config-check.ts';
import { assertProperty } from '../property.ts';

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-config-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const junk = fc.oneof(fc.string({ maxLength: 30 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 2 }));
const goodOrBad = <T>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: good }, { weight: 1, arbitrary: junk });
const strOf = (...xs: string[]) => fc.oneof(fc.constantFrom(...xs), fc.string({ maxLength: 20 }));
/** Objects with the real keys, each value good or junk, plus unknown keys. */
const configObject = fc.record(
  {
    listen: goodOrBad(strOf('127.0.0.1:8340', '[::1]:0', 'localhost:99999', ':80', '127.0.0.1', ' 0.0.0.0:1 ')),
    relays: goodOrBad(fc.array(strOf('wss://relay.damus.io', 'ws://127.0.0.1:1', 'https://not.a.relay', 'relay.example'), { maxLength: 3 })),
    mints: goodOrBad(fc.array(strOf('https://mint.example', 'http://127.0.0.1:3338/', 'mint.example', 'ftp://x'), { maxLength: 3 })),
    providers: goodOrBad(fc.array(strOf('https://p.example', 'abcdefghijklmnop.onion', 'p.example:8000', 'ftp://x', 'http://'), { maxLength: 3 })),
    curator: goodOrBad(strOf('a'.repeat(64), 'npub1sg6plzptd64u62a878hep2kev88swjh3tw00gjsfl8f237lmu63q0uf63m', 'npub1xyz', 'b'.repeat(63))),
    excludeBadReviews: goodOrBad(fc.boolean()),
    socksProxy: goodOrBad(strOf('socks5://127.0.0.1:9050', '127.0.0.1:9050', 'http://proxy', '')),
    usdPerSat: goodOrBad(fc.double({ min: 1e-9, max: 1, noNaN: true })),
    probe: goodOrBad(fc.record({ concurrency: goodOrBad(fc.integer({ min: 1, max: 64 })), refreshIntervalMs: goodOrBad(fc.nat()), timeoutMs: goodOrBad(fc.nat()) }, { requiredKeys: [] })),
    autoTopup: goodOrBad(fc.record({ thresholdSat: goodOrBad(fc.nat()), amountSat: goodOrBad(fc.integer({ min: 1, max: 1e6 })), minIntervalMs: goodOrBad(fc.nat()), dailyCapSat: goodOrBad(fc.nat()) }, { requiredKeys: [] })),
    somethingNew: junk,
  },
  { requiredKeys: [] },
);
const fileText = fc.oneof(
  { weight: 5, arbitrary: configObject.map((c) => JSON.stringify(c)) },
  { weight: 1, arbitrary: configObject.map((c) => `\ufeff${JSON.stringify(c, null, 2)}`) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: configObject.map((c) => JSON.stringify(c)).chain((s) => fc.nat({ max: s.length }).map((n) => s.slice(0, n))) },
  { weight: 1, arbitrary: fc.string({ maxLength: 100 }) },
);
const fileBytes = fc.oneof({ weight: 5, arbitrary: fileText.map((s) => Buffer.from(s)) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)) });
const envValue = fc.option(fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('127.0.0.1:0', 'wss://r.example,ws://127.0.0.1:2', 'https://m.example', ',,', ' ')), { nil: undefined });

/** Every value a loaded config hands the daemon is one it can use. */
function assertUsable(c: ReturnType<typeof loadConfig>): void {
  assert.equal(VALUE_CHECKS.listen(c.listen), null);
  for (const r of c.relays) assert.equal(VALUE_CHECKS.relay(r), null);
  for (const m of c.mints) assert.equal(VALUE_CHECKS.mint(m), null);
  for (const p of c.providers) assert.equal(VALUE_CHECKS.provider(p), null);
  if (c.curator !== undefined) assert.equal(VALUE_CHECKS.curator(c.curator), null);
  if (c.socksProxy !== undefined) assert.equal(VALUE_CHECKS.socksProxy(c.socksProxy), null);
}

/** A ConfigError is one printable line naming the file or an environment variable. */
function assertClearError(err: unknown, file: string): void {
  assert.ok(err instanceof ConfigError, `not a ConfigError: ${(err as Error)?.stack ?? String(err)}`);
  assert.ok(!/[\n\r]/.test(err.message), `more than one line: ${JSON.stringify(err.message)}`);
  assert.ok(!/ZodError|^\s+at |\[object Object\]/m.test(err.message), err.message);
  assert.ok(err.message.startsWith(file) || /^SATROUTE_[A-Z_]+(\[\d+\])?: /.test(err.message), err.message);
}

test('any satroute.json and any environment give a usable config or one ConfigError line naming where', (t) => {
  const root = tempDir(t);
  let n = 0;
  assertProperty(
    fc.property(fileBytes, envValue, envValue, envValue, envValue, (bytes, listen, relays, mints, providers) => {
      const dir = path.join(root, String(n++));
      fs.mkdirSync(dir);
      const file = path.join(dir, 'satroute.json');
      fs.writeFileSync(file, bytes);
      const env: NodeJS.ProcessEnv = { SATROUTE_DATA_DIR: dir };
      if (listen !== undefined) env.SATROUTE_LISTEN = listen;
      if (relays !== undefined) env.SATROUTE_RELAYS = relays;
      if (mints !== undefined) env.SATROUTE_MINTS = mints;
      if (providers !== undefined) env.SATROUTE_PROVIDERS = providers;
      try {
        assertUsable(loadConfig(env));
      } catch (err) {
        assertClearError(err, file);
      }
    }),
    { seed: 1401, numRuns: 150 },
  );
});

test('a wrong value is reported under its key, in the file or the variable it came from', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'satroute.json');
  const cases: [unknown, RegExp][] = [
    [{ listen: 'localhost' }, /satroute\.json: listen: expected host:port/],
    [{ relays: ['https://relay.example'] }, /satroute\.json: relays\[0\]: expected a ws:\/\/ or wss:\/\/ relay URL, got "https:\/\/relay.example"/],
    [{ mints: ['https://m.example', 'mint'] }, /satroute\.json: mints\[1\]: expected an http\(s\) mint URL/],
    [{ curator: 'npub1xyz' }, /satroute\.json: curator: expected a 64-character hex pubkey or an npub/],
    [{ socksProxy: 'http://proxy:8080' }, /satroute\.json: socksProxy: expected socks5/],
    [{ probe: { concurrency: 0 } }, /satroute\.json: probe\.concurrency: /],
    [{ autoTopup: { amountSat: 5 } }, /satroute\.json: autoTopup\.thresholdSat: /],
    [[1, 2], /satroute\.json must hold one JSON object .*not an array/],
    [null, /must hold one JSON object .*not null/],
  ];
  for (const [content, message] of cases) {
    fs.writeFileSync(file, JSON.stringify(content));
    assert.throws(() => loadConfig({ SATROUTE_DATA_DIR: dir }), (err: unknown) => err instanceof ConfigError && message.test(err.message), JSON.stringify(content));
  }
  fs.writeFileSync(file, '{}');
  assert.throws(() => loadConfig({ SATROUTE_DATA_DIR: dir, SATROUTE_LISTEN: 'nonsense' }), /^ConfigError: SATROUTE_LISTEN: expected host:port/);
  assert.throws(() => loadConfig({ SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: 'https://ok.example, nope' }), /SATROUTE_MINTS\[1\]: expected an http\(s\) mint URL, got "nope"/);
  fs.writeFileSync(file, '\ufeff{"mints": ["https://m.example"]}');
  assert.deepEqual(loadConfig({ SATROUTE_DATA_DIR: dir }).mints, ['https://m.example'], 'an editor\'s byte-order mark is not an error');
});

test('a satroute.json that is a directory, a FIFO or huge is a ConfigError, not a hang or a raw error', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'satroute.json');
  fs.mkdirSync(file);
  assert.throws(() => loadConfig({ SATROUTE_DATA_DIR: dir }), /satroute\.json is not a regular file/);
  fs.rmdirSync(file);
  execFileSync('mkfifo', [file]);
  assert.throws(() => loadConfig({ SATROUTE_DATA_DIR: dir }), /satroute\.json is not a regular file/);
  assert.throws(() => saveConfigFile(dir, { mints: [] }), ConfigError, 'saving over it is refused too');
  fs.rmSync(file);
  fs.writeFileSync(file, Buffer.alloc(MAX_CONFIG_BYTES + 1, 0x20));
  assert.throws(() => loadConfig({ SATROUTE_DATA_DIR: dir }), /over the 1048576-byte limit/);
  fs.writeFileSync(file, '{"mints": [');
  assert.throws(() => saveConfigFile(dir, { mints: ['https://m.example'] }), (err: unknown) => err instanceof ConfigError && /is not valid JSON/.test(err.message));
});
