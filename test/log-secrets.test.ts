// The log-secrets helper finds every kind of secret, and a real run's logs (daemon and
// commands, debug level) hold none of the secrets its data directory holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../protocol/logger.ts';
import { assertNoSecrets, captureLogs, findSecrets, secretsInDataDir } from './log-secrets.ts';
import { LightningNetwork } from './world/lightning.ts';
import { startMint } from './world/mint.ts';
import { startRelay } from './world/relay.ts';
import { startNwcService } from './world/nwc.ts';
import { outsideToken } from './wallet/world.ts';
import { satroute, startDaemonProcess } from './daemon/cli/run.ts';

const PROOF_SECRET = 'b7c5d2a1e9f04c3b8a6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b';
const TOKEN = 'cashuBo2FteCJodHRwOi8vMTI3LjAuMC4xOjQwMDAxYXVjc2F0YXSBomFpSAC0';
const NWC = 'nostr+walletconnect://3f6e?relay=ws%3A%2F%2F127.0.0.1%3A1&secret=0123456789abcdef0123456789abcdef';

test('every kind of secret is found, by its shape or as a known value, and reported without the secret', () => {
  const text = [
    `{"msg":"paid","token":"${TOKEN}"}`,
    `{"msg":"nwc","uri":"${NWC}"}`,
    '{"msg":"key","key":"sr_live_abcdefghijkl"}',
    '{"msg":"session","auth":"Bearer sk-0123456789abcdef"}',
    '{"msg":"nostr","k":"nsec1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hyxz0"}',
    `{"msg":"proof","proof":{"secret":"${PROOF_SECRET}"}}`,
    `{"msg":"spent: ${PROOF_SECRET}"}`,
    `{"msg":"evidence","evidence":"{\\"secret\\":\\"${PROOF_SECRET.slice(0, 20)}\\"}"}`,
  ].join('\n');
  const leaks = findSecrets(text, [PROOF_SECRET]);
  assert.deepEqual(leaks.map((l) => l.replace(/:.*/, '')), [
    'Cashu token on line 1', 'NWC secret on line 2', 'client key on line 3', 'session key on line 4', 'Nostr private key on line 5',
    'secret field on line 6', 'known secret on line 6', 'known secret on line 7', 'secret field on line 8',
  ]);
  assert.ok(leaks.every((l) => !l.includes(PROOF_SECRET) && !l.includes(TOKEN) && !l.includes('0123456789abcdef0123')), 'the report never repeats a whole secret');
  assert.throws(() => assertNoSecrets(text), /secrets in the log \(7\)/);
});

test("what the logger writes passes, except a bare proof secret in a message: only its value gives it away", () => {
  const logs = captureLogs();
  logs.logger.warn(`change refused: ${TOKEN}`, { nwc: NWC, key: 'sr_live_abcdefghijkl', auth: 'sk-0123456789abcdef', proof: { secret: PROOF_SECRET, amount: 8 } });
  logs.assertNoSecrets([PROOF_SECRET]);
  logs.logger.error(`mint says proof ${PROOF_SECRET} is spent`);
  assert.throws(() => logs.assertNoSecrets([PROOF_SECRET]), /known secret on line 2/);
  assert.doesNotThrow(() => assertNoSecrets(logs.text()), 'a bare hex secret has no shape to spot');
  const plain: string[] = [];
  createLogger({ write: (l) => plain.push(l) }).info('nothing secret', { amount: 8, mint: 'http://127.0.0.1:3338' });
  assert.deepEqual(findSecrets(plain.join('')), []);
});

test('a run at debug level - NWC connected, funded, a token received, through the daemon - logs none of the secrets its data directory holds', async (t) => {
  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln });
  const relay = await startRelay();
  const nwc = await startNwcService({ relayUrl: relay.url, lightning: ln, balanceSat: 20_000 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-logs-'));
  t.after(async () => {
    await nwc.stop();
    await relay.stop();
    await mint.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const env = { SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: mint.url, SATROUTE_RELAYS: '', SATROUTE_LISTEN: '127.0.0.1:0', SATROUTE_LOG_LEVEL: 'debug' };
  let log = '';
  const cli = async (...args: string[]) => {
    const r = await satroute(env, ...args);
    log += r.stdout + r.stderr;
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };

  await cli('wallet', 'nwc', nwc.uri);
  await cli('wallet', 'receive', await outsideToken(ln, mint.url, 100));
  const { child: daemon, stderr, exited } = await startDaemonProcess(t, env);
  await cli('wallet', 'fund', '300', '--json');
  await cli('wallet', 'receive', await outsideToken(ln, mint.url, 21), '--json');
  await cli('wallet', 'balance');
  await cli('wallet', 'history', '--json');
  daemon.kill('SIGTERM');
  const code = await exited;
  log += stderr();
  assert.equal(code, 0, log);

  const known = secretsInDataDir(dir);
  const nwcSecret = new URL(nwc.uri).searchParams.get('secret')!;
  assert.ok(known.includes(nwcSecret), 'the NWC secret is among the known secrets');
  assert.ok(known.length >= 10, `proof secrets found in the database: ${known.length}`);
  assert.match(log, /"level":"debug"/, 'the run really logged at debug level');
  assertNoSecrets(log, known);
});
