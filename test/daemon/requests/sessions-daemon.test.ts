// Session mode through the whole daemon: a stream over HTTP pays from a session by default, and
// stopping the daemon (what SIGTERM does) takes the balance home before the wallet stops; after
// a restart `audit verify` (wallet and request ledger) finds nothing out of place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../../daemon/config.ts';
import { callDaemon } from '../../../daemon/control/server.ts';
import { startDaemon } from '../../../daemon/daemon.ts';
import { InlineSwapEngine } from '../../../wallet/swap/engine.ts';
import { startWorld } from '../../world/index.ts';
import { captureLogs } from '../../log-secrets.ts';

test('a stream over HTTP pays from a session; stopping the daemon refunds it and audit verify passes after the restart', async (t) => {
  const world = await startWorld({
    seed: 7, mints: [{ name: 'm' }], nwcBalanceSat: 0,
    providers: [{ name: 'live', announce: false, mints: ['m'], models: [{ id: 'm-live', promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, contextLength: 1000, maxCompletionTokens: 200 }] }],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-sessions-daemon-'));
  t.after(async () => {
    await world.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const config = loadConfig({
    SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: world.mint('m').url, SATROUTE_RELAYS: world.relay.url, SATROUTE_LISTEN: '127.0.0.1:0', SATROUTE_PROVIDERS: world.provider('live').url,
  });
  // Debug logs captured: the session key (a bearer secret, sk-...) must never be in them.
  const logs = captureLogs();
  const opts = { logger: logs.logger, wallet: { engine: new InlineSwapEngine(), synchronous: 'NORMAL' as const } };
  const daemon = await startDaemon(config, opts);
  let stopped = false;
  t.after(() => (stopped ? undefined : daemon.stop()));
  await until(() => daemon.market.providers().some((p) => p.status === 'reachable'), 'the provider probed');
  const quote = await callDaemon<{ quote_id: string; bolt11: string }>(dir, 'wallet.fund.create', { amount_sat: 500 });
  world.lightning.pay(quote.bolt11);
  await callDaemon(dir, 'wallet.fund.status', { quote_id: quote.quote_id });
  const { key } = await callDaemon<{ key: string }>(dir, 'keys.create', { name: 'app' });

  const res = await fetch(`http://${daemon.info.listen}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm-live', stream: true, max_tokens: 40, messages: [{ role: 'user', content: 'Hello, live world.' }] }),
  });
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.match(text, /data: \[DONE\]/);
  const requestId = res.headers.get('x-satroute-request-id')!;
  assert.equal(daemon.ledger.get(requestId)!.payment, 'session');
  const [attempt] = daemon.ledger.attempts(requestId);
  const sessionId = attempt.sessionId!;
  assert.ok(daemon.payments.session(sessionId)!.heldSat > 0, 'the provider holds a balance for us');
  const status = await callDaemon<{ session_exposure: { heldSat: number; capSat: number }[] }>(dir, 'daemon.status');
  assert.equal(status.session_exposure.length, 1);
  assert.ok(status.session_exposure[0].heldSat <= status.session_exposure[0].capSat);
  // The same exposure in the metrics, per provider.
  const metrics = await daemon.metrics.render();
  const held = metrics.match(/^satroute_session_exposure_sat\{provider="[^"]+",kind="held"\} (\d+)$/m);
  assert.ok(held, 'the exposure gauge is in /metrics');
  assert.equal(Number(held[1]), status.session_exposure[0].heldSat);

  await daemon.stop();
  stopped = true;
  const again = await startDaemon(config, opts);
  t.after(() => again.stop());
  const s = again.payments.session(sessionId)!;
  assert.deepEqual([s.state, s.heldSat], ['closed', 0], 'the balance came home at the stop');
  assert.ok(s.refundedSat > 0);
  const wallet = await callDaemon<{ ok: boolean; differences: string[] }>(dir, 'wallet.verify');
  assert.equal(wallet.ok, true, wallet.differences.join('; '));
  const books = await callDaemon<{ ok: boolean; differences: string[] }>(dir, 'requests.verify');
  assert.equal(books.ok, true, books.differences.join('; '));
  const apiKey = again.db.prepare('SELECT api_key FROM provider_sessions WHERE session_id = ?').pluck().get(sessionId) as string;
  assert.match(apiKey, /^sk-/);
  assert.match(logs.text(), /"level":"debug"/);
  logs.assertNoSecrets([apiKey, key]);
});

/** Resolves once `cond()` holds (the daemon's own probe runs in the background). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 2_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
