// What Prometheus sees when it scrapes the daemon: the series issue 11 lists, with their labels.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { register as globalRegistry } from 'prom-client';
import { DaemonMetrics, metricsHandler, type BalanceSource, type WsFigures } from '../../../daemon/api/metrics.ts';

/** Parse the text exposition into samples: name, labels, value. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((line) => {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v.replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    return { name: m[1], labels, value: Number(m[3]) };
  });
}

/** The value of the one sample with this name and these labels (undefined when absent). */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples(text).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length);
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

const quiet = (sources = {}) => new DaemonMetrics({ version: '0.1.0', sources, processMetrics: false });

test('requests by outcome and provider, msat spent against expected, and flags per provider', async () => {
  const m = quiet();
  m.requestFinished({ outcome: 'ok', provider: 'alpha', chargedMsat: 21_000, expectedMsat: 20_000, flags: ['overcharged'], durationMs: 800 });
  m.requestFinished({ outcome: 'ok', provider: 'alpha', payment: 'session', chargedMsat: 5_000, expectedMsat: 5_000, durationMs: 300 });
  m.requestFinished({ outcome: 'provider_failed', provider: 'beta', chargedMsat: 0, durationMs: 1200 });
  m.requestFinished({ outcome: 'no_provider', provider: null, chargedMsat: 0, durationMs: 2 });
  m.attemptFinished('beta', 'failed');
  m.attemptFinished('alpha', 'ok');
  m.flagRaised('alpha', 'change_invalid'); // known only after the change was swapped
  const text = await m.render();

  assert.equal(value(text, 'satroute_requests_total', { outcome: 'ok', provider: 'alpha' }), 2);
  assert.equal(value(text, 'satroute_requests_total', { outcome: 'provider_failed', provider: 'beta' }), 1);
  assert.equal(value(text, 'satroute_requests_total', { outcome: 'no_provider', provider: 'none' }), 1);
  assert.equal(value(text, 'satroute_attempts_total', { provider: 'beta', result: 'failed' }), 1);
  assert.equal(value(text, 'satroute_spent_msat_total', { provider: 'alpha', payment: 'xcashu' }), 21_000);
  assert.equal(value(text, 'satroute_spent_msat_total', { provider: 'alpha', payment: 'session' }), 5_000);
  assert.equal(value(text, 'satroute_expected_msat_total', { provider: 'alpha', payment: 'xcashu' }), 20_000);
  assert.equal(value(text, 'satroute_flags_total', { flag: 'overcharged', provider: 'alpha' }), 1);
  assert.equal(value(text, 'satroute_flags_total', { flag: 'change_invalid', provider: 'alpha' }), 1);
  assert.equal(value(text, 'satroute_build_info', { version: '0.1.0' }), 1);
});

test('amounts that are not whole positive msat are never counted as spent', async () => {
  const m = quiet();
  m.requestFinished({ outcome: 'ok', provider: 'alpha', chargedMsat: -500, expectedMsat: 1.5, durationMs: 1 });
  m.requestFinished({ outcome: 'ok', provider: 'alpha', chargedMsat: Number.NaN, durationMs: 1 });
  const text = await m.render();
  assert.equal(value(text, 'satroute_spent_msat_total', { provider: 'alpha', payment: 'xcashu' }), 0);
  assert.equal(value(text, 'satroute_expected_msat_total', { provider: 'alpha', payment: 'xcashu' }), 0);
});

test('each breaker shows exactly one current state, and every opening is counted', async () => {
  const m = quiet();
  m.breakerState('alpha', null, 'open'); // state at start-up: not a new opening
  m.breakerState('beta', 'gpt-x', 'closed');
  m.breakerState('beta', 'gpt-x', 'open');
  m.breakerState('beta', 'gpt-x', 'half_open');
  m.breakerState('beta', 'gpt-x', 'open');
  m.breakerState('gamma', null, 'open', 'closed'); // a breaker first seen when it opens (its first failures created it)
  const text = await m.render();
  assert.deepEqual(['closed', 'open', 'half_open'].map((state) => value(text, 'satroute_breaker_state', { provider: 'alpha', model: '*', state })), [0, 1, 0]);
  assert.deepEqual(['closed', 'open', 'half_open'].map((state) => value(text, 'satroute_breaker_state', { provider: 'beta', model: 'gpt-x', state })), [0, 1, 0]);
  assert.equal(value(text, 'satroute_breaker_opened_total', { provider: 'beta', model: 'gpt-x' }), 2);
  assert.equal(value(text, 'satroute_breaker_opened_total', { provider: 'alpha', model: '*' }), undefined);
  assert.equal(value(text, 'satroute_breaker_opened_total', { provider: 'gamma', model: '*' }), 1);
});

test('every provider the market knows shows a breaker state: closed until it fails, gone when the market drops it', async () => {
  let known = ['alpha', 'beta', 'gamma'];
  const m = quiet({ providers: () => known });
  const states = (text: string, provider: string, model = '*') => ['closed', 'open', 'half_open'].map((state) => value(text, 'satroute_breaker_state', { provider, model, state }));
  let text = await m.render();
  for (const p of known) assert.deepEqual(states(text, p), [1, 0, 0], `${p} is listed closed before any failure`);
  m.breakerState('beta', null, 'open', 'closed');
  m.breakerState('gamma', 'gpt-x', 'open', 'closed'); // a model's breaker: the provider's own stays closed
  text = await m.render();
  assert.deepEqual(states(text, 'alpha'), [1, 0, 0]);
  assert.deepEqual(states(text, 'beta'), [0, 1, 0], 'a breaker that opened shows open, not the default');
  assert.deepEqual(states(text, 'gamma'), [1, 0, 0]);
  assert.deepEqual(states(text, 'gamma', 'gpt-x'), [0, 1, 0]);
  known = ['beta', 'gamma', 'delta'];
  text = await m.render();
  assert.deepEqual(states(text, 'alpha'), [undefined, undefined, undefined], 'a provider gone from the market drops out');
  assert.deepEqual(states(text, 'delta'), [1, 0, 0], 'a provider discovered since is listed');
  assert.deepEqual(states(text, 'beta'), [0, 1, 0]);
});

test('wallet balance per mint and pending settlements are read when Prometheus scrapes', async () => {
  let balances: BalanceSource[] = [
    { mint: 'https://mint.a', unit: 'sat', unspent: 5_000, pending: 42 },
    { mint: 'https://mint.b', unit: 'msat', unspent: 1_500, pending: 0 },
  ];
  let pending = 3;
  const m = quiet({ balances: () => balances, pendingSettlements: () => pending });
  let text = await m.render();
  assert.equal(value(text, 'satroute_wallet_balance', { mint: 'https://mint.a', unit: 'sat', state: 'unspent' }), 5_000);
  assert.equal(value(text, 'satroute_wallet_balance', { mint: 'https://mint.a', unit: 'sat', state: 'pending' }), 42);
  assert.equal(value(text, 'satroute_wallet_balance', { mint: 'https://mint.b', unit: 'msat', state: 'unspent' }), 1_500);
  assert.equal(value(text, 'satroute_pending_settlements'), 3);

  balances = [{ mint: 'https://mint.a', unit: 'sat', unspent: 4_958, pending: 0 }];
  pending = 0;
  text = await m.render();
  assert.equal(value(text, 'satroute_wallet_balance', { mint: 'https://mint.a', unit: 'sat', state: 'unspent' }), 4_958);
  assert.equal(value(text, 'satroute_wallet_balance', { mint: 'https://mint.b', unit: 'msat', state: 'unspent' }), undefined, 'a mint emptied away is not shown stale');
  assert.equal(value(text, 'satroute_pending_settlements'), 0);
});

test('the sats held in session balances at each provider, beside its cap, are read when Prometheus scrapes', async () => {
  let exposure = [{ providerId: 'p1', heldSat: 120, capSat: 400 }, { providerId: 'p2', heldSat: 0, capSat: 200 }];
  const m = quiet({ sessionExposure: () => exposure });
  let text = await m.render();
  assert.equal(value(text, 'satroute_session_exposure_sat', { provider: 'p1', kind: 'held' }), 120);
  assert.equal(value(text, 'satroute_session_exposure_sat', { provider: 'p1', kind: 'cap' }), 400);
  assert.equal(value(text, 'satroute_session_exposure_sat', { provider: 'p2', kind: 'held' }), 0);
  exposure = [{ providerId: 'p2', heldSat: 30, capSat: 200 }];
  text = await m.render();
  assert.equal(value(text, 'satroute_session_exposure_sat', { provider: 'p1', kind: 'held' }), undefined, 'a session refunded and closed is not shown stale');
  assert.equal(value(text, 'satroute_session_exposure_sat', { provider: 'p2', kind: 'held' }), 30);
});

test('requests in flight and the WebSocket figures are gauges read at scrape time; zero before the WebSocket API listens', async () => {
  let ws: WsFigures | null = null;
  let running = 0;
  const m = quiet({ ws: () => ws, requestsInFlight: () => running });
  let text = await m.render();
  assert.equal(value(text, 'satroute_ws_connections'), 0);
  assert.equal(value(text, 'satroute_requests_in_flight'), 0);
  ws = { connections: 3, authenticated: 2, requestsInFlight: 7, droppedEvents: 4, backpressureWaits: 11, backpressureFailures: 1, bufferedBytes: 65_536 };
  running = 9;
  text = await m.render();
  assert.deepEqual(
    ['connections', 'authenticated_connections', 'requests_in_flight', 'dropped_events', 'backpressure_waits', 'backpressure_failures', 'buffered_bytes'].map((n) => value(text, `satroute_ws_${n}`)),
    [3, 2, 7, 4, 11, 1, 65_536],
  );
  assert.equal(value(text, 'satroute_requests_in_flight'), 9);
});

test('latency histograms: request duration per provider, overhead, first chunk of streams', async () => {
  const m = quiet();
  m.requestFinished({ outcome: 'ok', provider: 'alpha', chargedMsat: 1000, durationMs: 700, overheadMs: 3, firstChunkMs: 400 });
  m.requestFinished({ outcome: 'ok', provider: 'alpha', chargedMsat: 1000, durationMs: 3_000, overheadMs: 0.4 });
  const text = await m.render();
  assert.equal(value(text, 'satroute_request_duration_seconds_count', { provider: 'alpha' }), 2);
  assert.equal(value(text, 'satroute_request_duration_seconds_bucket', { provider: 'alpha', le: '1' }), 1);
  assert.equal(value(text, 'satroute_request_duration_seconds_sum', { provider: 'alpha' }), 3.7);
  assert.equal(value(text, 'satroute_overhead_seconds_bucket', { le: '0.0005' }), 1);
  assert.equal(value(text, 'satroute_overhead_seconds_bucket', { le: '0.005' }), 2);
  assert.equal(value(text, 'satroute_first_chunk_seconds_count', { provider: 'alpha' }), 1);
});

test('event-loop lag and process figures come with the daemon metrics; two daemons never share series', async () => {
  const one = new DaemonMetrics({ version: '0.1.0' });
  const two = new DaemonMetrics({ version: '0.1.0' });
  one.requestFinished({ outcome: 'ok', provider: 'alpha', chargedMsat: 1000, durationMs: 10 });
  const text = await one.render();
  for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_max_seconds', 'nodejs_eventloop_lag_p99_seconds', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) {
    assert.ok(samples(text).some((s) => s.name === name), `${name} is exposed`);
  }
  assert.equal(value(await two.render(), 'satroute_requests_total', { outcome: 'ok', provider: 'alpha' }), undefined);
  assert.doesNotMatch(await globalRegistry.metrics(), /satroute_|nodejs_eventloop/, "prom-client's global registry stays empty");
});

async function serve(t: TestContext, m: DaemonMetrics): Promise<string> {
  const handler = metricsHandler(m);
  const server = http.createServer((req, res) => void handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
}

test('GET /metrics answers Prometheus text; other methods are refused', async (t) => {
  const m = quiet({ pendingSettlements: () => 7 });
  const url = await serve(t, m);
  const r = await fetch(url);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await r.text();
  assert.match(text, /^# HELP satroute_pending_settlements /m);
  assert.match(text, /^# TYPE satroute_requests_total counter$/m);
  assert.equal(value(text, 'satroute_pending_settlements'), 7);
  const post = await fetch(url, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
});

test('a source that fails (the database closing) gives a 500 for that scrape, and the next one works', async (t) => {
  let broken = true;
  const m = quiet({ balances: () => { if (broken) throw new Error('The database connection is not open'); return []; } });
  const url = await serve(t, m);
  const r = await fetch(url);
  assert.equal(r.status, 500);
  assert.match((await r.json()).error.message, /database connection is not open/);
  broken = false;
  assert.equal((await fetch(url)).status, 200);
});

test('label values from the network (provider names) cannot break the exposition', async () => {
  const m = quiet();
  const evil = 'evil"} 1\nsatroute_fake 9\\';
  m.requestFinished({ outcome: 'ok', provider: evil, chargedMsat: 1000, durationMs: 1 });
  const text = await m.render();
  assert.equal(value(text, 'satroute_requests_total', { outcome: 'ok', provider: evil }), 1);
  assert.ok(!samples(text).some((s) => s.name === 'satroute_fake'));
});
