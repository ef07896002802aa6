import './ws-global.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { NWCClient } from '@getalby/sdk';
import { getEncodedToken, Wallet } from '@cashu/cashu-ts';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import type { Event } from 'nostr-tools/pure';
import { defaultScenario, parseScenario, ScenarioError, seededRandom, startWorld, type Scenario, type WorldInfo } from './scenario.ts';

useWebSocketImplementation(WebSocket);

const here = fileURLToPath(new URL('.', import.meta.url));
const scenarioFile = (name: string) => JSON.parse(readFileSync(join(here, 'scenarios', name), 'utf8')) as unknown;

const small: Scenario = {
  mints: [{ name: 'm1' }],
  nwcBalanceSat: 2500,
  providers: [
    {
      name: 'cheap',
      models: [{ id: 'openai/gpt-4o-mini', aliasIds: ['gpt-4o-mini'], promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, maxCostSats: 500 }],
    },
    {
      name: 'dear',
      mints: [0],
      models: [{ id: 'openai/gpt-4o-mini', promptSatsPerToken: 0.03, completionSatsPerToken: 0.1, maxCostSats: 900 }],
      knobs: { latencyMs: 5, acceptedMints: ['m1'] },
    },
    {
      name: 'quiet',
      announce: false,
      models: [{ id: 'meta-llama/llama-3.1-8b-instruct', promptSatsPerToken: 0.002, completionSatsPerToken: 0.004 }],
    },
  ],
};

async function announcements(relayUrl: string): Promise<Event[]> {
  const relay = await Relay.connect(relayUrl);
  try {
    return await new Promise((resolve) => {
      const events: Event[] = [];
      const sub = relay.subscribe([{ kinds: [38421] }], {
        onevent: (e) => events.push(e),
        oneose: () => {
          sub.close();
          resolve(events);
        },
      });
    });
  } finally {
    relay.close();
  }
}

/** The handles still open once the previous test's closing sockets and servers have gone (up to 1 s). */
async function quiet(resources: () => string[]): Promise<string[]> {
  const deadline = Date.now() + 1000;
  let last = JSON.stringify(resources());
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    const now = JSON.stringify(resources());
    if (now === last) break;
    last = now;
  }
  return resources();
}

/** Closed servers release their handles a moment after their close callback: wait up to 1 s. */
async function settled(resources: () => string[], expected: string[]): Promise<void> {
  const deadline = Date.now() + 1000;
  while (Date.now() < deadline && JSON.stringify(resources()) !== JSON.stringify(expected)) await new Promise((r) => setTimeout(r, 10));
}

const tag = (e: Event, name: string) => e.tags.filter((t) => t[0] === name).map((t) => t[1]);

test('the example scenario files are valid and default.json is the built-in default', () => {
  assert.deepEqual(parseScenario(scenarioFile('default.json')), JSON.parse(JSON.stringify(defaultScenario)));
  const chaos = parseScenario(scenarioFile('chaos.json'));
  assert.ok(chaos.providers.length >= 5);
  const knobs = defaultScenario.providers.map((p) => p.knobs ?? {});
  assert.ok(knobs.some((k) => (k.overchargeFactor ?? 1) > 1), 'one provider overcharges');
  assert.ok(knobs.some((k) => (k.failureRate ?? 0) > 0), 'one provider is flaky');
  assert.ok(knobs.some((k) => k.dead === true), 'one provider is announced but dead');
});

test('a scenario with a mistake is refused with a one-line reason naming the place', () => {
  const bad = (patch: (s: Scenario) => void) => {
    const s = structuredClone(small);
    patch(s);
    return () => parseScenario(s);
  };
  const oneLine = (pattern: RegExp) => (err: unknown) => {
    assert.ok(err instanceof ScenarioError);
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  };
  assert.throws(bad((s) => (s.providers[1].mints = ['nope'])), oneLine(/providers\[1\].*unknown mint "nope"/));
  assert.throws(bad((s) => (s.providers[1].mints = [3])), oneLine(/mint index 3 is out of range/));
  assert.throws(bad((s) => (s.providers[1].name = 'cheap')), oneLine(/providers: the name "cheap" is used twice/));
  assert.throws(bad((s) => ((s.providers[0].knobs as Record<string, unknown>) = { failureRat: 0.5 })), oneLine(/providers\[0\]\.knobs/));
  assert.throws(bad((s) => (s.providers[0].knobs = { failureRate: 2 })), oneLine(/providers\[0\]\.knobs\.failureRate/));
  assert.throws(bad((s) => (s.providers[0].models = [])), oneLine(/providers\[0\]\.models/));
  assert.throws(bad((s) => ((s as { nwcBalanceSat?: number }).nwcBalanceSat = undefined)), oneLine(/nwcBalanceSat/));
  assert.throws(() => parseScenario('not an object'), oneLine(/scenario/));
  assert.throws(bad((s) => (s.providers[0].knobs = { impersonate: 'nobody' })), oneLine(/providers\[0\]: impersonate names no provider "nobody"/));
  assert.throws(bad((s) => (s.providers[0].knobs = { impersonate: 'cheap' })), oneLine(/providers\[0\]: a provider cannot impersonate itself/));
  assert.throws(bad((s) => (s.providers[0].knobs = { changeMint: 'nope' })), oneLine(/providers\[0\].*unknown mint "nope"/));
  // A mint outside the world may be named by URL.
  assert.doesNotThrow(bad((s) => (s.providers[1].mints = ['m1', 'https://mint.example.com'])));
});

test('the hostile example starts: the impostor claims the honest URL, the pools that pay surplus and rogue change are funded', async (t) => {
  const world = await startWorld(scenarioFile('hostile.json'));
  t.after(() => world.stop());
  const honest = world.provider('honest');
  const impostor = world.provider('impostor');
  assert.equal(impostor.knobs.impersonate, honest.url);
  const events = await announcements(world.relay.url);
  const claims = events.filter((e) => tag(e, 'u').includes(honest.url)).map((e) => e.pubkey);
  assert.deepEqual(claims.sort(), [honest.pubkey, impostor.pubkey].sort());
  assert.ok(!events.some((e) => tag(e, 'u').includes(impostor.url)), 'the impostor never announces its own URL');
  const rogue = world.mint('rogue').url;
  assert.equal(world.provider('rogue-change').knobs.changeMint, rogue);
  assert.deepEqual(world.provider('rogue-change').stats().pool.map((x) => [x.amount, x.unit]), [[500, 'sat'], [500, 'sat']]);
  assert.deepEqual(world.provider('generous').stats().pool.map((x) => x.amount), [500]);
  assert.equal(world.provider('huge').knobs.hugeBodyBytes, 100 * 1024 * 1024);
});

test('a started world announces its providers on the relay, serves them over HTTP and funds over NWC', async (t) => {
  const resources = () => process.getActiveResourcesInfo().filter((r) => r !== 'Timeout').sort();
  const before = await quiet(resources);
  const world = await startWorld(small);
  let stopped = false;
  t.after(async () => {
    if (!stopped) await world.stop();
  });
  const info = world.info();
  assert.match(info.relay, /^ws:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(info.mints.length, 1);
  assert.deepEqual(info.providers.map((p) => p.name), ['cheap', 'dear', 'quiet']);

  const events = await announcements(info.relay);
  const announced = events.map((e) => tag(e, 'u')[0]).sort();
  assert.deepEqual(announced, [world.provider('cheap').url, world.provider('dear').url].sort());
  for (const e of events) assert.deepEqual(tag(e, 'mint'), info.mints);

  for (const p of info.providers) {
    const res = await fetch(`${p.url}/v1/info`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { mints: string[] };
    assert.deepEqual(body.mints, info.mints);
  }
  const models = (await (await fetch(`${world.provider('cheap').url}/v1/models`)).json()) as { data: { id: string; alias_ids?: string[] }[] };
  assert.deepEqual(models.data.map((m) => m.id), ['openai/gpt-4o-mini']);

  assert.deepEqual(world.provider('dear').knobs.acceptedMints, info.mints, 'mint names resolve to URLs');
  assert.equal(world.provider('dear').knobs.latencyMs, 5);

  const client = new NWCClient({ nostrWalletConnectUrl: info.nwc });
  assert.equal((await client.getBalance()).balance, 2_500_000);
  client.close();

  await world.stop();
  stopped = true;
  await settled(resources, before);
  assert.deepEqual(resources(), before, 'no sockets or servers left open');
});

test('the default world has every kind of provider a router must cope with', async (t) => {
  const world = await startWorld();
  t.after(() => world.stop());
  const info = world.info();
  assert.equal(info.mints.length, 2);
  const events = await announcements(info.relay);
  assert.equal(events.length, defaultScenario.providers.length, 'all announced, the dead one too');
  await assert.rejects(fetch(`${world.provider('delta').url}/v1/models`), 'delta is dead over HTTP');
  assert.equal(world.provider('bravo').knobs.overchargeFactor, 1.5);
  assert.equal(world.provider('charlie').knobs.failureRate, 0.33);
  assert.deepEqual(tag(events.find((e) => tag(e, 'u')[0] === world.provider('echo').url)!, 'mint'), [`${world.mint('mint-b').url}/`], 'echo spells its mint with a trailing slash');
  assert.match(world.mint('mint-a').activeKeysetId(), /^00[0-9a-f]{14}$/, 'keyset ids as most mints write them');
  assert.match(world.mint('mint-b').activeKeysetId(), /^01[0-9a-f]{64}$/, 'and one mint with the newer form');
  assert.equal(world.provider('alpha').knobs.usdCost, true);
  // The same model is listed under different ids, linked by aliases.
  const listed = async (name: string) =>
    ((await (await fetch(`${world.provider(name).url}/v1/models`)).json()) as { data: { id: string; alias_ids?: string[] }[] }).data;
  const bravo = await listed('bravo');
  const alpha = await listed('alpha');
  assert.ok(bravo.some((m) => m.id === 'gpt-4o-mini' && m.alias_ids?.includes('openai/gpt-4o-mini')));
  assert.ok(alpha.some((m) => m.id === 'openai/gpt-4o-mini' && m.alias_ids?.includes('gpt-4o-mini')));
});

test('the chaos example starts: a mint down, one provider unannounced, msat keysets', async (t) => {
  const world = await startWorld(scenarioFile('chaos.json'));
  t.after(() => world.stop());
  assert.equal(world.mint('gone').isDown, true);
  await assert.rejects(fetch(`${world.mint('gone').url}/v1/info`));
  assert.deepEqual(world.mint('main').keysets().map((k) => k.unit).sort(), ['msat', 'sat']);
  assert.equal(world.mint('slow').knobs.latencyMs, 250);
  assert.equal(world.lightning.knobs.routingFeeMsat, 1000);
  const announcedUrls = (await announcements(world.relay.url)).map((e) => tag(e, 'u')[0]);
  assert.equal(announcedUrls.length, world.providers.length - 1);
  assert.ok(!announcedUrls.includes(world.provider('hidden').url));
  assert.equal((await fetch(`${world.provider('hidden').url}/v1/info`)).status, 200);
});

test('every strictness knob can be set from a scenario file, and a provider built from one answers by it', async (t) => {
  const strict = {
    mints: [{ name: 'm1', keysetIdVersion: '01', knobs: { rateLimit: { retryAfterSec: null, maxRequests: 1000 }, onlyRoute: 'POST /v1/swap' } }],
    nwcBalanceSat: 0,
    providers: [
      {
        name: 'strict',
        version: '0.4.3',
        mintSpelling: 'trailing-slash',
        models: [{ id: 'm', promptSatsPerToken: 0.01, completionSatsPerToken: 0.02, maxCostSats: 20, requestSats: 0 }],
        knobs: {
          foreignMint: 'refuse',
          upstreamError: { status: 402, models: ['m'], forMs: 60000 },
          usdCost: true,
          usdDrift: -0.03,
          priceChange: { factor: 2, afterRequests: 3 },
          refundRecordDelayMs: 0,
          refundSweepAgeMs: 86400000,
          staleContentLength: 'larger',
          rateLimit: { maxRequests: 5 },
        },
      },
    ],
  };
  const world = await startWorld(JSON.parse(JSON.stringify(strict)));
  t.after(() => world.stop());
  const p = world.provider('strict');
  for (const [key, value] of Object.entries(strict.providers[0].knobs)) assert.deepEqual(p.knobs[key as keyof typeof p.knobs], value, key);
  const listed = `${world.mint('m1').url}/`;
  assert.deepEqual(p.knobs.acceptedMints, [listed]);
  assert.deepEqual(((await (await fetch(`${p.url}/v1/info`)).json()) as { mints: string[] }).mints, [listed]);
  assert.match(world.mint('m1').activeKeysetId(), /^01/);
  assert.equal(world.mint('m1').knobs.onlyRoute, 'POST /v1/swap');
  // A token written with the mint's own spelling is foreign to this node, which refuses it.
  const wallet = new Wallet(world.mint('m1').url, { unit: 'sat' });
  await wallet.loadMint();
  const quote = await wallet.createMintQuoteBolt11(30);
  world.lightning.pay(quote.request);
  const proofs = await wallet.mintProofsBolt11(30, quote.quote);
  const send = (mint: string) =>
    fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'X-Cashu': getEncodedToken({ mint, unit: 'sat', proofs }) },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 }),
    });
  const foreign = await send(world.mint('m1').url);
  assert.equal(foreign.status, 422);
  assert.match(((await foreign.json()) as { error: { message: string } }).error.message, /^CASHU mint error: Failed to melt token from foreign mint/, 'in the words of v0.4.3');
  const res = await send(listed);
  assert.equal(res.status, 402, 'its upstream is out of credit');
  assert.equal(((await res.json()) as { error: { type: string } }).error.type, 'upstream_error');
});

test('a seeded random source repeats itself and stays in [0, 1)', () => {
  const a = seededRandom(21);
  const b = seededRandom(21);
  const xs = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(Array.from({ length: 1000 }, () => b()), xs);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05);
  assert.notDeepEqual(Array.from({ length: 5 }, seededRandom(22)), xs.slice(0, 5));
});

test('a world whose provider cannot start stops the parts it had started', async (t) => {
  const resources = () => process.getActiveResourcesInfo().filter((r) => r !== 'Timeout').sort();
  const squatter = createServer();
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => squatter.close(() => r())));
  const before = await quiet(resources);
  const taken = (squatter.address() as AddressInfo).port;
  const s = structuredClone(small);
  s.providers[1].port = taken; // relay, mint, NWC and the first provider are up by then
  await assert.rejects(startWorld(s), /EADDRINUSE/);
  await settled(resources, before);
  assert.deepEqual(resources(), before);
});

test('npm run world prints one JSON line, serves the market to other processes, and stops cleanly on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'world-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'small.json');
  // One provider with strictness knobs, to show the CLI takes them from a file.
  const quiet = { ...small.providers[2], mintSpelling: 'trailing-slash', knobs: { usdCost: true, usdDrift: 0.02, upstreamError: { status: 402, forMs: 1000 }, foreignMint: 'refuse' } };
  writeFileSync(file, JSON.stringify({ ...small, providers: [...small.providers.slice(0, 2), quiet] }));
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'cli.ts'), '--scenario', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', () => reject(new Error(`world exited early: ${stderr}`)));
  });
  const info = JSON.parse(first) as WorldInfo;
  assert.deepEqual(Object.keys(info), ['relay', 'mints', 'providers', 'nwc']);
  assert.deepEqual(info.providers.map((p) => Object.keys(p)), [['name', 'url'], ['name', 'url'], ['name', 'url']]);
  assert.match(info.nwc, /^nostr\+walletconnect:\/\//);

  const events = await announcements(info.relay);
  assert.equal(events.length, 2);
  const mintInfo = await fetch(`${info.mints[0]}/v1/info`);
  assert.equal(mintInfo.status, 200);
  const quietInfo = (await (await fetch(`${info.providers[2].url}/v1/info`)).json()) as { mints: string[] };
  assert.deepEqual(quietInfo.mints, [`${info.mints[0]}/`], "the provider's own spelling of the mint");

  const more: string[] = [];
  lines.on('line', (l) => more.push(l));
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  assert.deepEqual(more, [], 'nothing but the one JSON line on stdout');
});

test('npm run world explains itself with --help and refuses a bad scenario file in one line', async () => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'cli.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  const dir = mkdtempSync(join(tmpdir(), 'world-cli-'));
  try {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...small, providers: [{ ...small.providers[0], mints: ['nowhere'] }] }));
    const [help, invalid, missing, notJson] = await Promise.all([
      run(['--help']),
      run(['--scenario', bad]),
      run(['--scenario', join(dir, 'missing.json')]),
      (writeFileSync(join(dir, 'x.json'), '{ nope'), run(['--scenario', join(dir, 'x.json')])),
    ]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--scenario FILE/);
    for (const r of [invalid, missing, notJson]) {
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    assert.match(invalid.stderr, /unknown mint "nowhere"/);
    assert.match(missing.stderr, /cannot read .*ENOENT/);
    assert.match(notJson.stderr, /not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
