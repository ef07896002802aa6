// The WebSocket API end to end: a real daemon (startDaemon, the real request lifecycle, wallet
// and routing) on 127.0.0.1:0 against the local world, funded over NWC, driven by `ws` clients
// as a program would. One world and one daemon for the file, logging at debug level into a
// capture; the WebSocket API's timers (stall timeout, auth timeout) are fired by hand. The file
// ends with a stop while HTTP and WebSocket requests run, a restart, `audit verify`, and a grep
// of everything logged for secrets.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { loadConfig, type Config } from '../../../daemon/config.ts';
import { startDaemon, type Daemon } from '../../../daemon/daemon.ts';
import { costJson } from '../../../daemon/requests/reply.ts';
import { InlineSwapEngine } from '../../../wallet/swap/engine.ts';
import { startWorld, type Scenario, type World } from '../../world/index.ts';
import { captureLogs, secretsInDataDir } from '../../log-secrets.ts';
import { assertAccounted, settleBackground } from '../requests/books.ts';
import { satroute } from '../cli/run.ts';
import { ManualTimers, type Msg } from './ws-fixture.ts';

const KiB = 1024;
const LIMITS = { heartbeatMs: 0, highWaterBytes: 256 * KiB, hardLimitBytes: 4096 * KiB, stallTimeoutMs: 30_000 };
const model = (id: string, prompt: number, completion: number) => ({ id, promptSatsPerToken: prompt, completionSatsPerToken: completion, contextLength: 1000, maxCompletionTokens: 200 });
const SCENARIO: Scenario = {
  seed: 5,
  mints: [{ name: 'mint-a' }],
  nwcBalanceSat: 50_000,
  providers: [
    // honest; also the (ten times dearer) second choice for chat-failover
    { name: 'main', announce: false, mints: ['mint-a'], models: [model('chat-ws', 0.01, 0.04), model('chat-failover', 0.1, 0.4)] },
    // every upstream call fails after redemption (503 with refund_token)
    { name: 'failing', announce: false, mints: ['mint-a'], knobs: { failureRate: 1, failureStatus: 503 }, models: [model('chat-failover', 0.01, 0.04)] },
    // its change turns out spent when the wallet swaps it (known only after `done`)
    { name: 'badchange', announce: false, mints: ['mint-a'], knobs: { invalidChange: 'spent' }, models: [model('chat-badchange', 0.01, 0.04)] },
    // a stream that never ends: a chunk every 20 ms
    { name: 'endless', announce: false, mints: ['mint-a'], knobs: { endlessMs: 20 }, models: [model('chat-endless', 0.01, 0.04)] },
    // a 32 MB stream, 64 KiB per event, as fast as the socket takes it
    { name: 'huge', announce: false, mints: ['mint-a'], knobs: { hugeBodyBytes: 32 * 1024 * KiB }, models: [model('chat-huge', 0.01, 0.04)] },
    // thinks 400 ms before answering: in flight when the daemon stops
    { name: 'slow', announce: false, mints: ['mint-a'], knobs: { ttfbMs: 400 }, models: [model('chat-slow', 0.01, 0.04)] },
  ],
};

let world: World;
let daemon: Daemon;
let config: Config;
let dir: string;
let key: string;
let url: string;
const timers = new ManualTimers();
const logs = captureLogs();

const providerId = (name: string) => daemon.market.providers().find((p) => p.url === world.provider(name).url)!.id;
const books = () => assertAccounted({ db: daemon.db, wallet: daemon.wallet, payments: daemon.payments, lifecycle: daemon.lifecycle });
const isEnd = (m: Msg) => m.type === 'done' || m.type === 'error';

async function start(): Promise<Daemon> {
  const d = await startDaemon(config, { logger: logs.logger, wallet: { engine: new InlineSwapEngine(), synchronous: 'NORMAL' }, ws: { limits: LIMITS, timers } });
  await Promise.all(d.market.providers().map((p) => d.market.probe(p.id)));
  url = `ws://${d.info.listen}/v1/ws`;
  return d;
}

before(async () => {
  world = await startWorld(SCENARIO);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-ws-'));
  const base = loadConfig({
    SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: world.mints[0].url, SATROUTE_RELAYS: '',
    SATROUTE_PROVIDERS: world.providers.map((p) => p.url).join(','), SATROUTE_LISTEN: '127.0.0.1:0', SATROUTE_LOG_LEVEL: 'debug',
  });
  // Streams pay per request by X-Cashu here (each its own token, as these tests count them); the
  // session mode has its own tests (test/daemon/requests/sessions*.test.ts).
  config = { ...base, requests: { ...base.requests, shutdownGraceMs: 3_000 }, payment: { streaming: 'xcashu' } };
  daemon = await start();
  assert.equal(daemon.market.providersFor('chat-failover').length, 2, 'every provider probed');
  await daemon.wallet.connectNwc(world.nwc.uri);
  const funded = await daemon.wallet.fund(8_000, { pollMs: 5, timeoutMs: 10_000 });
  assert.equal(funded.paidVia, 'nwc');
  key = daemon.keys.create({ name: 'app', admin: true }).key;
});

after(async () => {
  await daemon?.stop();
  await world?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A `ws` client keeping every message the daemon sent. */
class Client {
  readonly messages: Msg[] = [];
  private readonly waiters = new Set<() => void>();
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)) as Msg);
      this.wake();
    });
    ws.on('close', () => this.wake());
  }

  static async open(auth: 'header' | 'none' = 'header', k = key): Promise<Client> {
    // Listening before the socket opens: the daemon's first message may come in the upgrade's packet.
    const c = new Client(new WebSocket(url, auth === 'header' ? { headers: { authorization: `Bearer ${k}` } } : {}));
    await new Promise<void>((resolve, reject) => {
      c.ws.once('open', resolve);
      c.ws.once('error', reject);
    });
    return c;
  }

  send(m: unknown): void {
    this.ws.send(JSON.stringify(m));
  }

  /** The first message from index `from` on that matches; rejects if the socket closes first. */
  next(pred: (m: Msg) => boolean, from = 0): Promise<Msg> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.messages.slice(from).find(pred);
        if (m) {
          this.waiters.delete(check);
          resolve(m);
        } else if (this.ws.readyState === WebSocket.CLOSED) {
          this.waiters.delete(check);
          reject(new Error(`closed before the expected message; last: ${JSON.stringify(this.messages.slice(-2)).slice(0, 400)}`));
        }
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Subscribed once the daemon answered a ping sent after it. */
  async subscribe(topics: string[]): Promise<void> {
    const from = this.messages.length;
    this.send({ type: 'subscribe', topics });
    this.send({ type: 'ping' });
    await this.next((m) => m.type === 'pong', from);
  }

  of(id: string): Msg[] {
    return this.messages.filter((m) => m.id === id);
  }

  events(topic: string): Msg[] {
    return this.messages.filter((m) => m.type === 'event' && m.topic === topic);
  }

  closed(): Promise<number> {
    return new Promise((resolve) => (this.ws.readyState === WebSocket.CLOSED ? resolve(-1) : this.ws.once('close', (code) => resolve(code))));
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

const chat = (id: string, modelId: string, opts: { stream?: boolean; content?: string } = {}) => ({
  type: 'request', id, endpoint: '/v1/chat/completions',
  body: { model: modelId, messages: [{ role: 'user', content: opts.content ?? `request ${id}` }], max_tokens: 60, stream: opts.stream ?? true },
});

/** Resolves once `cond()` holds; waits on the world's and the daemon's progress, bounded. */
async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a hundred concurrent streams on one connection end with done costs equal to their audit rows, and the payments topic gets each one', async () => {
  const c = await Client.open();
  await c.subscribe(['payments']);
  const ids = Array.from({ length: 100 }, (_, i) => `s${i}`);
  // different lengths of prompt and answer: different costs per stream
  ids.forEach((id, i) => c.send(chat(id, 'chat-ws', { content: `stream ${id} ${'word '.repeat(i % 40)}` })));
  const ends = await Promise.all(ids.map((id) => c.next((m) => m.id === id && isEnd(m))));
  assert.deepEqual(ends.filter((m) => m.type !== 'done').map((m) => m.message), [], 'every stream done');
  await settleBackground(daemon);
  const audit = new Map<string, Record<string, unknown>>();
  for (const r of (await admin('audit')).requests as Record<string, unknown>[]) audit.set(r.request_id as string, r);
  const costs = new Set<number>();
  for (const id of ids) {
    const msgs = c.of(id);
    const done = msgs.at(-1)!;
    assert.equal(msgs[0].type, 'accepted');
    assert.ok(msgs.filter((m) => m.type === 'chunk').length >= 2, `${id} streamed chunks`);
    const row = daemon.ledger.get(done.request_id as string)!;
    assert.equal(row.status, 'succeeded');
    assert.deepEqual(done.cost, costJson(row), `${id}: done's cost is the request row's`);
    const a = audit.get(row.id)!;
    const cost = done.cost as unknown as Record<string, number>;
    assert.deepEqual(
      [a.sent_sats, a.change_sats, a.charged_msat, a.expected_msat, a.reported_msat],
      [cost.sent_sats, cost.change_sats, cost.charged_msat, cost.expected_msat, cost.reported_msat],
      `${id}: done's cost is its audit row's`,
    );
    assert.ok(cost.charged_msat > 0 && cost.expected_msat > 0);
    assert.deepEqual(done.usage, { prompt_tokens: row.promptTokens, completion_tokens: row.completionTokens, total_tokens: row.promptTokens! + row.completionTokens! });
    costs.add(cost.charged_msat);
    // one payments event per settled request, with the same cost
    const events = c.events('payments').filter((e) => e.request_id === row.id);
    assert.equal(events.length, 1, `${id}: one payments event`);
    assert.deepEqual({ cost: events[0].cost, status: events[0].status, late: events[0].late }, { cost: done.cost, status: 'succeeded', late: false });
  }
  assert.ok(costs.size > 1, 'the costs differ by request');
  assert.equal(daemon.ws.stats().requestsInFlight, 0);
  await books();
  c.ws.close();
});

async function admin(name: string): Promise<Record<string, unknown>> {
  const r = await fetch(`http://${daemon.info.listen}/admin/${name}`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(r.status, 200);
  return (await r.json()) as Record<string, unknown>;
}

test('cancel mid-stream stops the upstream stream, the client gets canceled with its request id, and the charge is settled', async () => {
  const c = await Client.open();
  await c.subscribe(['payments']);
  c.send(chat('forever', 'chat-endless'));
  await c.next((m) => m.id === 'forever' && m.type === 'chunk' && c.of('forever').filter((x) => x.type === 'chunk').length >= 5);
  c.send({ type: 'cancel', id: 'forever' });
  const end = await c.next((m) => m.id === 'forever' && isEnd(m));
  assert.equal(end.type, 'error');
  assert.equal(end.code, 'canceled');
  const row = daemon.ledger.get(end.request_id as string)!;
  assert.equal(row.status, 'canceled');
  assert.ok(row.sentSat > 0, 'a token went out');
  const event = await c.next((m) => m.type === 'event' && m.request_id === row.id);
  assert.deepEqual({ status: event.status, cost: event.cost }, { status: 'canceled', cost: costJson(row) });
  await until(() => world.provider('endless').stats().requests === 1 && daemon.lifecycle.running === 0, 'the request to end');
  await books();
  c.ws.close();
});

test('a client that stops reading never makes the daemon buffer past its limit; its stream fails clearly and is settled', async () => {
  const c = await Client.open();
  c.send(chat('flood', 'chat-huge'));
  await c.next((m) => m.id === 'flood' && m.type === 'chunk');
  (c.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
  const waitsBefore = daemon.ws.stats().backpressureWaits;
  let maxBuffered = 0;
  let quiet = 0;
  // Until the kernel's buffers are full and the stream is held by the daemon, sampling what it buffers.
  await until(() => {
    const s = daemon.ws.stats();
    const was = maxBuffered;
    maxBuffered = Math.max(maxBuffered, s.bufferedBytes);
    quiet = s.backpressureWaits > waitsBefore && s.bufferedBytes === was ? quiet + 1 : 0;
    return quiet >= 20;
  }, 'the stream to be held back');
  assert.ok(maxBuffered <= LIMITS.highWaterBytes + 70 * KiB, `the daemon buffered at most ${maxBuffered} bytes (high-water mark ${LIMITS.highWaterBytes} + one 64 KiB event)`);
  const row = () => daemon.ledger.get(c.of("flood")[0].request_id as string)!;
  assert.equal(row().status, 'pending', 'held, not failed, while within the stall timeout');
  timers.advance(LIMITS.stallTimeoutMs);
  await until(() => row().status !== 'pending', 'the stalled request to settle');
  assert.equal(row().status, 'canceled');
  assert.equal(daemon.ws.stats().backpressureFailures, 1);
  (c.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
  const end = await c.next((m) => m.id === 'flood' && isEnd(m));
  assert.deepEqual({ type: end.type, code: end.code }, { type: 'error', code: 'canceled' });
  assert.match(end.message as string, /read nothing for 30 s/);
  const chunks = c.of('flood').filter((m) => m.type === 'chunk').length;
  assert.ok(chunks < 200, `the upstream was held too: ${chunks} of ~512 events reached the client`);
  await books();
  c.ws.close();
});

test('a missing or wrong key is refused: unauthorized, and the socket closes', async () => {
  const before = daemon.db.prepare('SELECT COUNT(*) FROM requests').pluck().get();
  const wrong = await Client.open('header', 'sr_not_a_real_key_at_all_000000');
  const refused = await wrong.next((m) => m.type === 'error');
  assert.equal(refused.code, 'unauthorized');
  await wrong.closed();

  const silent = await Client.open('none');
  silent.send(chat('sneaky', 'chat-ws'));
  assert.equal((await silent.next((m) => m.type === 'error')).code, 'unauthorized');
  await silent.closed();

  const late = await Client.open('none');
  timers.advance(5_000);
  assert.match((await late.next((m) => m.type === 'error')).message as string, /no auth message within 5 s/);
  assert.equal(await late.closed(), 1008);
  assert.equal(daemon.db.prepare('SELECT COUNT(*) FROM requests').pluck().get(), before, 'nothing was admitted');
});

test('a late invalid change comes as a payments event after done; a failing provider fails over and its breaker opens on the providers topic', async () => {
  const c = await Client.open();
  await c.subscribe(['payments', 'providers']);
  c.send(chat('bad', 'chat-badchange', { stream: false }));
  const done = await c.next((m) => m.id === 'bad' && isEnd(m));
  assert.equal(done.type, 'done');
  assert.deepEqual(done.flags, []);
  await settleBackground(daemon); // the change swap runs and finds it spent
  const late = await c.next((m) => m.type === 'event' && m.request_id === done.request_id && m.late === true);
  assert.ok((late.flags as string[]).includes('change_invalid'), `late flags ${String(late.flags)}`);
  assert.equal((late.cost as { change_sats: number }).change_sats, 0, 'invalid change is not counted as returned');
  assert.deepEqual(late.cost, costJson(daemon.ledger.get(done.request_id as string)!));

  const failing = providerId('failing');
  for (let i = 0; i < 3; i++) {
    c.send(chat(`fo${i}`, 'chat-failover', { stream: false }));
    const end = await c.next((m) => m.id === `fo${i}` && isEnd(m));
    assert.equal(end.type, 'done', 'served by the second choice');
    assert.equal(end.provider, providerId('main'));
  }
  const opened = await c.next((m) => m.type === 'event' && m.topic === 'providers' && m.kind === 'breaker' && m.provider === failing && m.state === 'open');
  assert.equal(opened.url, world.provider('failing').url);
  assert.equal(world.provider('failing').stats().requests, 3);
  await books();
  c.ws.close();
});

test('GET /metrics shows what the requests did: outcomes per provider, msat spent, flags, breakers, balances, latencies, event-loop lag, the WebSocket figures', async () => {
  const c = await Client.open(); // one connection open while scraped
  const r = await fetch(`http://${daemon.info.listen}/metrics`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(r.status, 200);
  const text = await r.text();
  const value = (series: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    assert.ok(line, `no series ${series}`);
    return Number(line.slice(series.length + 1));
  };
  const main = providerId('main');
  const spentBy = (p: string) => daemon.db.prepare('SELECT COALESCE(SUM(charged_msat), 0) FROM attempts WHERE provider_id = ?').pluck().get(p) as number;
  assert.equal(value(`satroute_requests_total{outcome="ok",provider="${main}"}`), 103);
  assert.equal(value(`satroute_requests_total{outcome="canceled",provider="${providerId('endless')}"}`), 1);
  assert.equal(value(`satroute_requests_total{outcome="canceled",provider="${providerId('huge')}"}`), 1);
  assert.equal(value(`satroute_attempts_total{provider="${providerId('failing')}",result="failed"}`), 3);
  assert.equal(value(`satroute_spent_msat_total{provider="${main}",payment="xcashu"}`), spentBy(main));
  assert.equal(value(`satroute_flags_total{flag="change_invalid",provider="${providerId('badchange')}"}`), 1);
  assert.equal(value(`satroute_breaker_state{provider="${providerId('failing')}",model="*",state="open"}`), 1);
  assert.equal(value(`satroute_breaker_opened_total{provider="${providerId('failing')}",model="*"}`), 1);
  assert.equal(value(`satroute_breaker_state{provider="${main}",model="*",state="closed"}`), 1, 'a provider that never failed is listed, closed');
  const [balance] = daemon.wallet.balance().mints;
  assert.equal(value(`satroute_wallet_balance{mint="${balance.mint}",unit="sat",state="unspent"}`), balance.unspent);
  assert.equal(value('satroute_pending_settlements'), 0);
  assert.equal(value(`satroute_request_duration_seconds_count{provider="${main}"}`), 103);
  assert.ok(value('satroute_overhead_seconds_count') >= 103);
  assert.equal(value(`satroute_first_chunk_seconds_count{provider="${main}"}`), 100);
  assert.ok(value('nodejs_eventloop_lag_max_seconds') >= 0);
  assert.equal(value('satroute_ws_connections'), 1);
  assert.equal(value('satroute_ws_requests_in_flight'), 0);
  assert.equal(value('satroute_ws_backpressure_failures'), 1);
  assert.equal(value('satroute_requests_in_flight'), 0);
  c.ws.close();
});

test('a provider that stops answering its probe shows on the providers topic as unreachable, and back as reachable', async () => {
  const c = await Client.open();
  await c.subscribe(['providers']);
  const huge = world.provider('huge');
  const id = providerId('huge');
  await huge.setDead(true);
  await daemon.market.probe(id);
  const down = await c.next((m) => m.type === 'event' && m.kind === 'reachability' && m.provider === id);
  assert.deepEqual({ state: down.state, url: down.url }, { state: 'unreachable', url: huge.url });
  await huge.setDead(false);
  await daemon.market.probe(id);
  const up = await c.next((m) => m.type === 'event' && m.kind === 'reachability' && m.provider === id && m.state === 'reachable');
  assert.equal(up.url, huge.url);
  c.ws.close();
});

/** `satroute status --json` run as a user does (another process), against this data directory. */
async function status(): Promise<Record<string, any>> {
  const r = await satroute({ SATROUTE_DATA_DIR: dir, SATROUTE_FROM_SOURCE: '1' }, 'status', '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, any>;
}

const spentToday = () => daemon.db.prepare('SELECT SUM(charged_msat) FROM requests').pluck().get() as number;

test('satroute status shows the balance per mint, spend today, providers up, the open breaker, pending settlements, version and uptime', async () => {
  const s = await status();
  assert.equal(s.running, true);
  assert.equal(s.version, '0.1.0');
  assert.equal(typeof s.uptime_s, 'number');
  const [mint] = daemon.wallet.balance().mints;
  assert.deepEqual(s.mints.map((m: { mint: string; unspent: number }) => [m.mint, m.unspent]), [[mint.mint, mint.unspent]]);
  assert.ok(s.books.spent_today_msat > 0);
  assert.equal(s.books.spent_today_msat, spentToday());
  assert.equal(s.books.requests_today, daemon.db.prepare('SELECT COUNT(*) FROM requests').pluck().get());
  assert.equal(s.books.pending_settlements, 0);
  assert.deepEqual(s.books.breakers_not_closed.map((b: { provider_id: string; state: string }) => [b.provider_id, b.state]), [[providerId('failing'), 'open']]);
  assert.equal(s.usable_providers, SCENARIO.providers.length, 'reachable (the breaker is routing, not reachability)');
  const text = await satroute({ SATROUTE_DATA_DIR: dir, SATROUTE_FROM_SOURCE: '1' }, 'status');
  assert.match(text.stdout, /satroute 0\.1\.0 running .* up \d/);
  assert.match(text.stdout, new RegExp(`breakers: +${providerId('failing').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} open`));
  assert.match(text.stdout, /pending: +0 settlements not final/);
});

test('stopping (what SIGTERM does) while HTTP and WebSocket requests run: they finish or are canceled and settled; after a restart audit verify passes and no log holds a secret', async () => {
  const c = await Client.open();
  c.send(chat('slow-ws', 'chat-slow'));
  c.send(chat('endless-ws', 'chat-endless'));
  const http = fetch(`http://${daemon.info.listen}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'chat-slow', messages: [{ role: 'user', content: 'hello over http' }], max_tokens: 60 }),
  });
  await until(() => world.provider('slow').stats().redeemed === 2 && c.of('endless-ws').some((m) => m.type === 'chunk'), 'all three requests to be with their providers');
  const stopped = daemon.stop();
  const answer = await http;
  assert.equal(answer.status, 200, 'the HTTP request in flight finished');
  assert.ok(((await answer.json()) as { choices: unknown[] }).choices.length);
  assert.equal((await c.next((m) => m.id === 'slow-ws' && isEnd(m))).type, 'done', 'the WebSocket stream in flight finished');
  const endless = await c.next((m) => m.id === 'endless-ws' && isEnd(m));
  assert.deepEqual({ type: endless.type, code: endless.code }, { type: 'error', code: 'canceled' }, 'the one that outlived the grace was canceled');
  await stopped;
  await c.closed();

  daemon = await start();
  const ids = [answer.headers.get('x-satroute-request-id')!, ...['slow-ws', 'endless-ws'].map((id) => c.of(id).at(-1)!.request_id as string)];
  assert.deepEqual(ids.map((id) => daemon.ledger.get(id)!.status), ['succeeded', 'succeeded', 'canceled']);
  await books();
  const verify = await fetch(`http://${daemon.info.listen}/admin/wallet`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(verify.status, 200);

  // Everything logged (debug level): NWC funding, keys, HTTP and WebSocket requests, a failover,
  // two stops. (The data directory is read once the daemon is stopped.)
  const spentAtStop = spentToday();
  const balanceAtStop = daemon.wallet.balance().totalSat;
  await daemon.stop();
  const known = secretsInDataDir(dir);
  assert.ok(known.includes(new URL(world.nwc.uri).searchParams.get('secret')!), 'the NWC secret is among the known secrets');
  assert.ok(known.length > 100, `proof secrets known: ${known.length}`);
  assert.match(logs.text(), /"level":"debug"/);
  logs.assertNoSecrets([...known, key]);

  // With no daemon running, `satroute status` reads the same figures from the data directory.
  const after = await status();
  assert.equal(after.running, false);
  assert.equal(after.books.spent_today_msat, spentAtStop);
  assert.deepEqual(after.books.breakers_not_closed.map((b: { state: string }) => b.state), ['open']);
  assert.equal(after.balance_sat, balanceAtStop);
});
