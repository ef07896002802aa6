import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../daemon/config.ts';
import { callDaemon, DaemonNotRunningError } from '../../daemon/control/server.ts';
import { daemonFile, startDaemon } from '../../daemon/daemon.ts';
import { LightningNetwork } from '../world/lightning.ts';
import { startMint } from '../world/mint.ts';
import { startRelay } from '../world/relay.ts';

test('the daemon owns the wallet: CLI calls go through it, a second daemon is refused, a restart keeps the money', async (t) => {
  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln });
  const relay = await startRelay();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-daemon-'));
  t.after(async () => {
    await relay.stop();
    await mint.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const config = loadConfig({ SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: mint.url, SATROUTE_RELAYS: relay.url, SATROUTE_LISTEN: '127.0.0.1:0' });

  const daemon = await startDaemon(config);
  const info = JSON.parse(fs.readFileSync(daemonFile(dir), 'utf8'));
  assert.equal(info.pid, process.pid);
  assert.equal(info.listen, daemon.info.listen);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700, 'the data directory is private');

  const quote = await callDaemon<{ quote_id: string; bolt11: string }>(dir, 'wallet.fund.create', { amount_sat: 400 });
  ln.pay(quote.bolt11);
  const funded = await callDaemon<{ state: string }>(dir, 'wallet.fund.status', { quote_id: quote.quote_id });
  assert.equal(funded.state, 'issued');
  assert.equal((await callDaemon<{ total_sat: number }>(dir, 'wallet.balance')).total_sat, 400);
  const status = await callDaemon<{ wallet: { totalSat: number }; listen: string }>(dir, 'daemon.status');
  assert.equal(status.wallet.totalSat, 400);

  await assert.rejects(startDaemon(config), /already running|locked|lock/i, 'one writer per data directory');
  assert.ok(fs.existsSync(daemonFile(dir)), 'the refused second start leaves the first one alone');

  await daemon.stop();
  assert.ok(!fs.existsSync(daemonFile(dir)));
  await assert.rejects(callDaemon(dir, 'wallet.balance'), DaemonNotRunningError);

  const again = await startDaemon(config);
  t.after(() => again.stop());
  assert.equal((await callDaemon<{ total_sat: number }>(dir, 'wallet.balance')).total_sat, 400);
  const verify = await callDaemon<{ ok: boolean; differences: string[] }>(dir, 'wallet.verify');
  assert.equal(verify.ok, true, verify.differences.join('; '));
  // The books are served too: keys, and the request ledger's check beside the wallet's.
  assert.equal((await callDaemon<{ name: string }>(dir, 'keys.create', { name: 'app' })).name, 'app');
  assert.deepEqual(await callDaemon(dir, 'requests.verify'), { ok: true, requests: 0, attempts: 0, open: 0, differences: [] });
});

test('a listen address that is taken fails the start with one clear reason and leaves nothing behind', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-daemon-'));
  const first = await startDaemon(loadConfig({ SATROUTE_DATA_DIR: path.join(dir, 'a'), SATROUTE_RELAYS: 'ws://127.0.0.1:1', SATROUTE_LISTEN: '127.0.0.1:0' }));
  t.after(async () => {
    await first.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const second = loadConfig({ SATROUTE_DATA_DIR: path.join(dir, 'b'), SATROUTE_RELAYS: 'ws://127.0.0.1:1', SATROUTE_LISTEN: first.info.listen });
  await assert.rejects(startDaemon(second), /address is in use/);
  assert.ok(!fs.existsSync(daemonFile(second.dataDir)));
  assert.ok(!fs.existsSync(path.join(second.dataDir, 'control.sock')));
  // the lock was released: a start on a free address works
  const retry = await startDaemon({ ...second, listen: '127.0.0.1:0' });
  await retry.stop();
});
