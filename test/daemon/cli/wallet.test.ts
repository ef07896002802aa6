// `satroute wallet ...` as a user runs it: a separate process on a data directory, with no
// daemon running (in-process with the lock) and through a daemon's control socket.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LightningNetwork } from '../../world/lightning.ts';
import { startMint } from '../../world/mint.ts';
import { startRelay } from '../../world/relay.ts';
import { startNwcService } from '../../world/nwc.ts';
import { outsideToken } from '../../wallet/world.ts';
import { startControlServer } from '../../../daemon/control/server.ts';
import { openWallet } from '../../../wallet/open.ts';
import { walletControlHandlers } from '../../../daemon/control/wallet.ts';
import { satroute } from './run.ts';


async function setup(t: TestContext) {
  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln });
  const relay = await startRelay();
  const nwc = await startNwcService({ relayUrl: relay.url, lightning: ln, balanceSat: 50_000 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-cli-'));
  t.after(async () => {
    await nwc.stop();
    await relay.stop();
    await mint.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const env = { SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: mint.url };
  return { ln, mint, nwc, dir, env };
}

test('without a daemon: connect NWC, fund, receive, withdraw, balance and history from the command line', async (t) => {
  const { ln, mint, nwc, dir, env } = await setup(t);
  const empty = await satroute(env, 'wallet', 'balance');
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(empty.stdout, /No ecash yet/);

  const connected = await satroute(env, 'wallet', 'nwc', nwc.uri);
  assert.equal(connected.code, 0, connected.stderr);
  assert.match(connected.stdout, /Connected to NWC wallet test-nwc .*balance 50,000 sat/);
  const secret = new URL(nwc.uri).searchParams.get('secret')!;
  assert.ok(!connected.stdout.includes(secret) && !connected.stderr.includes(secret));
  assert.equal(fs.statSync(path.join(dir, 'nwc.json')).mode & 0o777, 0o600);

  const human = await satroute(env, 'wallet', 'fund', '1000');
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /Invoice for 1,000 sat/);
  assert.match(human.stdout, /\nlnbcrt10u1\w+\n/);
  assert.match(human.stdout, /[▀▄█]/); // the QR code
  assert.match(human.stdout, /Funded 1,000 sat/);

  const funded = await satroute(env, 'wallet', 'fund', '500', '--json');
  assert.equal(funded.code, 0, funded.stderr);
  const f = JSON.parse(funded.stdout);
  assert.deepEqual([f.state, f.amount_sat, f.paid_via], ['issued', 500, 'nwc']);

  const token = await outsideToken(ln, mint.url, 21);
  const received = await satroute(env, 'wallet', 'receive', token, '--json');
  assert.equal(received.code, 0, received.stderr);
  assert.equal(JSON.parse(received.stdout).amount_sat, 21);

  const again = await satroute(env, 'wallet', 'receive', token);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /^satroute: this token \(21 sat\) was already spent\n$/);

  const invoice = ln.node('shop').createInvoice(200_000);
  const withdrawn = await satroute(env, 'wallet', 'withdraw', invoice.bolt11, '--json');
  assert.equal(withdrawn.code, 0, withdrawn.stderr);
  const w = JSON.parse(withdrawn.stdout);
  assert.equal(w.state, 'paid');
  assert.ok(w.change_sat > 0);

  const balance = JSON.parse((await satroute(env, 'wallet', 'balance', '--json')).stdout);
  assert.equal(balance.total_sat, 1000 + 500 + 21 - 200 - w.lightning_fee_sat);
  const history = JSON.parse((await satroute(env, 'wallet', 'history', '--json')).stdout);
  assert.deepEqual(history.entries.map((e: { kind: string }) => e.kind).filter((k: string) => k !== 'mint_fee'), ['withdrawal', 'receive', 'funding', 'funding']); // no Lightning fee: no fee row
  assert.ok(!fs.existsSync(path.join(dir, 'wallet.lock')), 'the lock is released when the command ends');
});

test('a token from an untrusted mint is refused in one line, and --trust adds the mint', async (t) => {
  const { ln, env } = await setup(t);
  const stranger = await startMint({ lightning: ln, name: 'stranger' });
  t.after(() => stranger.stop());
  const token = await outsideToken(ln, stranger.url, 5);
  const refused = await satroute(env, 'wallet', 'receive', token);
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr, `satroute: mint ${stranger.url} is not trusted; add it to "mints" in satroute.json (or SATROUTE_MINTS) to accept its tokens\n`);
  const bad = await satroute(env, 'wallet', 'fund', 'ten');
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'satroute: amount must be a whole number of sats, got "ten"\n');
  const { SATROUTE_MINTS: _, ...fileOnly } = env; // --trust writes satroute.json; the env var would override it
  fs.writeFileSync(path.join(env.SATROUTE_DATA_DIR, 'satroute.json'), JSON.stringify({ mints: [env.SATROUTE_MINTS] }));
  const trusted = await satroute(fileOnly, 'wallet', 'receive', token, '--trust', '--json');
  assert.equal(trusted.code, 0, trusted.stderr);
  assert.equal(JSON.parse(trusted.stdout).amount_sat, 5);
});

test('with a daemon running, the command goes through its control socket and takes no lock', async (t) => {
  const { ln, mint, dir, env } = await setup(t);
  const { wallet, close } = openWallet({ dataDir: dir, mints: [mint.url] });
  const server = await startControlServer(dir, walletControlHandlers(wallet));
  t.after(async () => { await server.close(); await close(); });
  const token = await outsideToken(ln, mint.url, 13);
  const r = await satroute(env, 'wallet', 'receive', token, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).amount_sat, 13);
  assert.equal(wallet.balance().totalSat, 13); // the daemon's wallet received it
});
