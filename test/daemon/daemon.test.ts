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

/** Resolves once `cond()` holds; waits on another process's progress, bounded. */
async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('SIGTERM lets a request in flight finish before the wallet stops; a crash mid-request is settled from the wallet on the next start, before it listens', async (t) => {
  const { spawn } = await import('node:child_process');
  const readline = await import('node:readline');
  const { startWorld } = await import('../world/index.ts');
  const { root, bin } = await import('./cli/run.ts');
  const { InlineSwapEngine } = await import('../../wallet/swap/engine.ts');
  const { assertAccounted } = await import('./requests/books.ts');
  // 'slow' thinks 1.5 s after taking the token: long enough to signal the daemon mid-request.
  const world = await startWorld({
    mints: [{ name: 'mint-a' }], nwcBalanceSat: 0,
    providers: [{ name: 'slow', announce: false, knobs: { ttfbMs: 1_500 }, models: [{ id: 'm', promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, contextLength: 1000, maxCompletionTokens: 200 }] }],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-daemon-'));
  t.after(async () => {
    await world.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const env = { SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: world.mints[0].url, SATROUTE_RELAYS: '', SATROUTE_PROVIDERS: world.providers[0].url, SATROUTE_LISTEN: '127.0.0.1:0', SATROUTE_FROM_SOURCE: '1', SATROUTE_LOG_LEVEL: 'warn' };
  const slow = world.provider('slow');
  const start = async () => {
    const child = spawn(process.execPath, [bin, 'start', '--json'], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const line = await new Promise<string>((resolve) => readline.createInterface({ input: child.stdout! }).once('line', resolve));
    const base = `http://${(JSON.parse(line) as { listen: string }).listen}`;
    await until(async () => (await fetch(`${base}/healthz`).then((r) => r.json()) as { providers: number }).providers === 1, 'the provider to be known');
    return { child, exited, base };
  };
  const ask = (base: string, key: string) =>
    fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 200 }) }); // room for change

  // A first run: fund, a key, then SIGTERM while a request is with the provider.
  const first = await start();
  const quote = await callDaemon<{ quote_id: string; bolt11: string }>(dir, 'wallet.fund.create', { amount_sat: 500 });
  world.lightning.pay(quote.bolt11);
  assert.equal((await callDaemon<{ state: string }>(dir, 'wallet.fund.status', { quote_id: quote.quote_id })).state, 'issued');
  const { key } = await callDaemon<{ key: string }>(dir, 'keys.create', { name: 'app' });
  await until(async () => ((await fetch(`${first.base}/v1/models`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.json())) as { data: unknown[] }).data.length === 1, 'the market to offer the model');
  const inFlight = ask(first.base, key);
  await until(() => slow.stats().redeemed === 1, 'the provider to take the token');
  first.child.kill('SIGTERM');
  const answer = await inFlight;
  assert.equal(answer.status, 200, 'the request in flight finished');
  assert.ok(((await answer.json()) as { choices: unknown[] }).choices.length);
  assert.equal(await first.exited, 0);
  assert.ok(!fs.existsSync(daemonFile(dir)));
  await assert.rejects(fetch(`${first.base}/healthz`), 'no longer listening');

  // A second run, killed (SIGKILL) while the provider holds the token.
  const second = await start();
  const lost = ask(second.base, key).catch(() => null);
  await until(() => slow.stats().redeemed === 2, 'the provider to take the second token');
  second.child.kill('SIGKILL');
  await second.exited;
  assert.equal(await lost, null, 'the client saw the connection drop');
  await until(() => slow.stats().succeeded === 2, 'the provider to finish (its change waits at its refund endpoint)');

  // The next start settles the interrupted request from the mint (spent) and the refund endpoint (the change).
  const daemon = await startDaemon(loadConfig(env), { wallet: { engine: new InlineSwapEngine(), payments: { refund: { pollAttempts: 3, pollDelayMs: 50 } } } });
  t.after(() => daemon.stop());
  const interrupted = daemon.ledger.attemptByPayment([...daemon.db.prepare("SELECT payment_id FROM attempts ORDER BY started_at DESC LIMIT 1").pluck().all() as string[]][0])!;
  const row = daemon.ledger.get(interrupted.requestId)!;
  assert.equal(row.status, 'failed');
  assert.equal(row.errorCode, 'interrupted');
  assert.equal(daemon.payments.outcome(interrupted.paymentId!)!.state, 'refunded', 'the change came back through the refund endpoint');
  assert.ok(interrupted.flags.includes('refunded'));
  assert.ok(interrupted.changeSat > 0);
  await assertAccounted({ db: daemon.db, wallet: daemon.wallet, payments: daemon.payments, lifecycle: daemon.lifecycle });
  assert.equal(daemon.budgets.get(row.id)!.state, 'settled');
});
