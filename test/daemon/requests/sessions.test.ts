// Session mode against the local world's balance (API-key) mode (routstr-core v0.4.5 balance.py,
// auth.py, upstream/base.py): a streamed answer reaches the client as the provider makes it, a
// local reservation keeps concurrent requests from overdrawing the balance, the balance comes
// home (idle, SIGTERM, after a crash) with `audit verify` clean after each, a vanished provider
// costs at most the cap, and a balance that shrinks beyond the reported costs is flagged.
// The provider's waits are a Gate (the world's injected delay): ordering is asserted on the
// world's virtual time, never on wall-clock thresholds.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startProvider, startWorld, type ProviderKnobs, type Scenario, type TestProvider, type World } from '../../world/index.ts';
import type { SessionOptions } from '../../../daemon/requests/session-contract.ts';
import { SessionManager } from '../../../daemon/requests/sessions.ts';
import { recoverInterrupted } from '../../../daemon/requests/recover.ts';
import { Gate } from '../../world/provider/balance-fixture.ts';
import { harness, type Capture, type Harness } from './lifecycle-fixture.ts';

const SCENARIO: Scenario = { seed: 12, mints: [{ name: 'mint-a' }], nwcBalanceSat: 0, providers: [] };
const MODEL = { id: 'm-live', promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, contextLength: 1000, maxCompletionTokens: 200 };

let base: World;
before(async () => {
  base = await startWorld(SCENARIO);
});
after(() => base?.stop());

interface Setup {
  h: Harness;
  p: TestProvider;
  gate: Gate;
  /** Warnings the request path logged (why a request did not pay from a session, say). */
  warnings: string[];
}

/** One provider (its waits on a Gate, open unless `held`) and a funded request path with session mode. */
async function setup(t: TestContext, o: { knobs?: Partial<ProviderKnobs>; sessions?: Partial<SessionOptions>; fund?: number; dearer?: Partial<ProviderKnobs> } = {}): Promise<Setup> {
  const gate = new Gate();
  gate.open(); // the provider's waits pass at once until a test holds them
  const p = await startProvider({ name: 'live', relays: [], mints: [base.mint('mint-a').url], models: [MODEL], knobs: o.knobs, delay: gate.delay, noAnnounce: true });
  const providers = [p];
  if (o.dearer) {
    const dear = { ...MODEL, promptSatsPerToken: MODEL.promptSatsPerToken * 3, completionSatsPerToken: MODEL.completionSatsPerToken * 3 };
    providers.push(await startProvider({ name: 'dearer', relays: [], mints: [base.mint('mint-a').url], models: [dear], knobs: o.dearer, delay: gate.delay, noAnnounce: true }));
  }
  const world = { ...base, providers, mints: base.mints, lightning: base.lightning, mint: (n: string) => base.mint(n), provider: (n: string) => providers.find((x) => x.name === n)! } as World;
  const warnings: string[] = [];
  const logger = { debug() {}, info() {}, error: (m: string, f?: object) => warnings.push(`${m} ${JSON.stringify(f)}`), warn: (m: string, f?: object) => warnings.push(`${m} ${JSON.stringify(f)}`) };
  const h = await harness(world, { fund: { 'mint-a': o.fund ?? 3000 }, sessions: { idleRefundMs: 60_000, ...o.sessions }, logger });
  t.after(async () => {
    await h.close();
    for (const x of providers) await x.stop();
  });
  return { h, p, gate, warnings };
}

const ok = (r: Capture): Capture => {
  assert.equal(r.errorWith, undefined, r.errorWith?.message);
  return r;
};
/** Let the event loop run until `cond` holds (no timer: the test waits on events, not on time). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}
const walletSession = (h: Harness, id: string) => h.payments.session(id)!;
const sessionOf = (h: Harness, requestId: string) => h.ledger.attempts(requestId).at(-1)!.sessionId!;

test('session mode: the first chunk reaches the client right after the provider makes it; X-Cashu: only once the whole answer is made', async (t) => {
  const live = await setup(t, { knobs: { chunkDelayMs: 50 } });
  ok(await live.h.ask(MODEL.id, { stream: true })); // warm: the session exists, the provider has met the mint
  live.gate.hold();
  const startedAt = live.gate.now;
  let firstAt: number | undefined;
  const run = live.h.ask(MODEL.id, { stream: true, onChunk: () => (firstAt ??= live.gate.now - startedAt) });
  await live.gate.until(1);
  assert.equal(firstAt, undefined);
  live.gate.releaseOne(); // the upstream made its first chunk
  await until(() => firstAt !== undefined);
  assert.equal(firstAt, 50, `the client had the first chunk one chunk delay after the request (${live.warnings.join('; ')})`);
  live.gate.open();
  const s = ok(await run);
  const total = live.gate.now - startedAt;
  assert.ok(total >= 50 * 4, `the whole generation took ${total} ms of provider time`);
  assert.equal(s.acceptedWith!.payment, 'session');
  assert.equal(live.h.ledger.get(s.requestId)!.payment, 'session');

  const buffered = await setup(t, { knobs: { chunkDelayMs: 50 } });
  ok(await buffered.h.ask(MODEL.id, { stream: true, payment: 'xcashu' }));
  buffered.gate.hold();
  const started2 = buffered.gate.now;
  let bufferedFirstAt: number | undefined;
  const run2 = buffered.h.ask(MODEL.id, { stream: true, payment: 'xcashu', onChunk: () => (bufferedFirstAt ??= buffered.gate.now - started2) });
  await buffered.gate.until(1);
  assert.equal(bufferedFirstAt, undefined);
  buffered.gate.releaseOne(); // the node read the upstream to its end
  const x = ok(await run2);
  assert.equal(x.acceptedWith!.payment, 'xcashu');
  assert.equal(bufferedFirstAt, buffered.gate.now - started2, 'X-Cashu: the first chunk came with the last, after the whole generation');
  assert.ok(bufferedFirstAt! >= total - 50, `buffered first chunk at ${bufferedFirstAt} ms of ${total}`);
  assert.equal(x.chunks.length, s.chunks.length);
  await live.h.accounted();
  await buffered.h.accounted();
});

test('20 concurrent streams on one session never overdraw it: one session, no 402, every stream paid from it', async (t) => {
  const { h, p } = await setup(t, { knobs: { chunkDelayMs: 1 } });
  const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => h.ask(MODEL.id, { stream: true, content: `stream ${i}` })));
  for (const r of runs) ok(r);
  assert.deepEqual(runs.map((r) => h.ledger.get(r.requestId)!.payment), Array(20).fill('session'));
  const sessions = new Set(runs.map((r) => sessionOf(h, r.requestId)));
  assert.equal(sessions.size, 1, 'one session per provider and mint');
  assert.equal(p.stats().byStatus[402] ?? 0, 0, 'the node never found the balance short');
  const [id] = sessions;
  const held = walletSession(h, id);
  const charged = runs.reduce((t2, r) => t2 + h.ledger.get(r.requestId)!.chargedMsat, 0);
  assert.equal(held.chargedMsat, charged, 'the wallet booked what the requests were charged');
  const [exposure] = h.sessions!.exposure();
  assert.ok(h.sessions!.peakExposureSat <= exposure.capSat, `peak ${h.sessions!.peakExposureSat} sat within the cap of ${exposure.capSat}`);
  await h.sessions!.closeAll();
  assert.ok(h.wallet.ctx.ledger.list({ kind: "session_deposit" }).length >= 2, "topped up within the cap as charges made room");
  assert.equal(walletSession(h, id).state, 'refunding');
  await h.accounted();
  assert.equal(walletSession(h, id).state, 'closed');
});

test('streams that waited together for a session (its deposit, room under its cap) go on to pay one per event-loop turn', async (t) => {
  const { h } = await setup(t, { knobs: { chunkDelayMs: 1 } });
  // One step per turn of the event loop (an immediate that queues the next one).
  let turn = 0;
  let counting = true;
  const tick = () => {
    turn++;
    if (counting) setImmediate(tick);
  };
  setImmediate(tick);
  const turns: number[] = [];
  const start = h.ledger.startAttempt.bind(h.ledger);
  h.ledger.startAttempt = (a) => {
    turns.push(turn);
    return start(a);
  };
  // All wait for the first one's deposit; without a turn each after the lease, they all paid in the deposit's turn.
  const runs = await Promise.all(Array.from({ length: 12 }, (_, i) => h.ask(MODEL.id, { stream: true, content: `stream ${i}` })));
  counting = false;
  for (const r of runs) ok(r);
  assert.deepEqual(runs.map((r) => h.ledger.get(r.requestId)!.payment), Array(12).fill('session'));
  assert.equal(turns.length, 12);
  assert.equal(new Set(turns).size, 12, `attempts started in turns ${turns.join(', ')}`);
  await h.sessions!.closeAll();
  await h.accounted();
});

test('an idle session is refunded and the balance comes home (audit verify clean)', async (t) => {
  const { h } = await setup(t);
  const r = ok(await h.ask(MODEL.id, { stream: true }));
  const id = sessionOf(h, r.requestId);
  assert.equal(await h.sessions!.sweep(), 0, 'not idle yet');
  h.clock.advance(60_000);
  assert.equal(await h.sessions!.sweep(), 1);
  await h.accounted();
  const s = walletSession(h, id);
  assert.deepEqual([s.state, s.heldSat, s.flags], ['closed', 0, []]);
  assert.ok(s.refundedSat > 0);
  assert.deepEqual(h.sessions!.unclosed(), []);
});

test('SIGTERM: after the requests drain every session is refunded (audit verify clean)', async (t) => {
  const { h } = await setup(t);
  const r = ok(await h.ask(MODEL.id, { stream: true }));
  const id = sessionOf(h, r.requestId);
  await h.lifecycle.drain(1_000);
  await h.sessions!.closeAll('shutdown');
  await h.accounted();
  assert.equal(walletSession(h, id).state, 'closed');
  assert.equal(walletSession(h, id).heldSat, 0);
});

test('a crash leaves a session behind: the next start refunds it before anything else (audit verify clean)', async (t) => {
  const { h } = await setup(t);
  const r = ok(await h.ask(MODEL.id, { stream: true }));
  const id = sessionOf(h, r.requestId);
  assert.ok(walletSession(h, id).heldSat > 0);
  // The process died: its manager is gone, the rows (and the key) stay in the database.
  const next = new SessionManager({ db: h.db, payments: h.payments, clock: () => h.clock.now, sleep: async () => {} });
  assert.equal(await next.recover(), 1);
  await h.accounted();
  assert.deepEqual([walletSession(h, id).state, walletSession(h, id).heldSat], ['closed', 0]);
});

test('a kill cut a stream the node had charged: the next start charges that request what the balance lost, and blames no provider', async (t) => {
  const { h, p } = await setup(t);
  const first = ok(await h.ask(MODEL.id, { stream: true }));
  const id = sessionOf(h, first.requestId);
  const apiKey = h.db.prepare('SELECT api_key FROM provider_sessions WHERE session_id = ?').pluck().get(id) as string;
  const [a1] = h.ledger.attempts(first.requestId);
  // The request the daemon was streaming on the session when it was killed: its rows pending...
  h.ledger.open({ id: 'cut', client: 'test', endpoint: '/v1/chat/completions', modelRequested: MODEL.id, stream: true, payment: 'session', reservedMsat: 60_000, priceSnapshot: a1.price });
  h.ledger.startAttempt({ requestId: 'cut', n: 1, providerId: a1.providerId, providerUrl: a1.providerUrl, modelId: MODEL.id, mint: a1.mint, paymentId: null, sessionId: id, price: a1.price, sentSat: 0, feeSat: 0 });
  // ...and the node, which served it to the end and charged the balance (proxy.py).
  const balance = async () => ((await (await fetch(`${p.url}/v1/balance/info`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as { balance: number }).balance;
  const before = await balance();
  const res = await fetch(`${p.url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL.id, stream: true, max_tokens: 40, messages: [{ role: 'user', content: 'cut short' }] }),
  });
  await res.text();
  const chargedMsat = before - (await balance());
  assert.ok(chargedMsat > 0);
  // The next start: the request books first (the attempt interrupted), then the sessions.
  recoverInterrupted({ db: h.db, ledger: h.ledger, budgets: h.budgets }, () => undefined, () => h.clock.now);
  const next = new SessionManager({ db: h.db, payments: h.payments, books: { ledger: h.ledger, budgets: h.budgets }, clock: () => h.clock.now, sleep: async () => {} });
  assert.equal(await next.recover(), 1);
  await h.accounted();
  const [cut] = h.ledger.attempts('cut');
  assert.deepEqual([cut.status, cut.errorCode, cut.sessionChargedMsat, cut.chargedMsat], ['failed', 'interrupted', chargedMsat, chargedMsat]);
  assert.equal(h.ledger.get('cut')!.chargedMsat, chargedMsat, 'the request shows what it cost');
  const s = walletSession(h, id);
  assert.deepEqual([s.state, s.heldSat, s.flags], ['closed', 0, []], 'nothing unexplained at close: the provider is not flagged');
});

test('a kill cut two streams on one session: the next start splits what the balance lost between them by their reservations, each request and budget shows its share', async (t) => {
  const { h, p } = await setup(t);
  const first = ok(await h.ask(MODEL.id, { stream: true }));
  const id = sessionOf(h, first.requestId);
  const apiKey = h.db.prepare('SELECT api_key FROM provider_sessions WHERE session_id = ?').pluck().get(id) as string;
  const [a1] = h.ledger.attempts(first.requestId);
  const client = { name: 'test', dailySats: null, maxSatsPerRequest: null };
  // Two requests the daemon was streaming on the session when it was killed, admitted as the lifecycle does...
  for (const [rid, reservedMsat] of [['cut-big', 60_000], ['cut-small', 30_000]] as const) {
    h.db.transaction(() => {
      h.budgets.reserve(rid, client, reservedMsat);
      h.ledger.open({ id: rid, client: 'test', endpoint: '/v1/chat/completions', modelRequested: MODEL.id, stream: true, payment: 'session', reservedMsat, priceSnapshot: a1.price });
    })();
    h.ledger.startAttempt({ requestId: rid, n: 1, providerId: a1.providerId, providerUrl: a1.providerUrl, modelId: MODEL.id, mint: a1.mint, paymentId: null, sessionId: id, price: a1.price, sentSat: 0, feeSat: 0 });
  }
  const spentBefore = h.budgets.spentTodayMsat('test');
  // ...and the node, which served both to the end and charged the balance (proxy.py).
  const balance = async () => ((await (await fetch(`${p.url}/v1/balance/info`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as { balance: number }).balance;
  const before = await balance();
  for (const content of ['cut short', 'cut shorter still']) {
    const res = await fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL.id, stream: true, max_tokens: 40, messages: [{ role: 'user', content }] }),
    });
    await res.text();
  }
  const lostMsat = before - (await balance());
  assert.ok(lostMsat > 0 && lostMsat <= 90_000);
  // The next start: the request books first (the attempts interrupted), then the sessions.
  recoverInterrupted({ db: h.db, ledger: h.ledger, budgets: h.budgets }, () => undefined, () => h.clock.now);
  const next = new SessionManager({ db: h.db, payments: h.payments, books: { ledger: h.ledger, budgets: h.budgets }, clock: () => h.clock.now, sleep: async () => {} });
  assert.equal(await next.recover(), 1);
  await h.accounted();
  // Pro rata to 60 000 : 30 000 msat reserved, rounded down; the odd msat to the larger.
  const small = Math.floor(lostMsat / 3);
  const shares = { 'cut-big': lostMsat - small, 'cut-small': small };
  for (const [rid, share] of Object.entries(shares)) {
    const [cut] = h.ledger.attempts(rid);
    assert.deepEqual([cut.status, cut.errorCode, cut.sessionChargedMsat, cut.chargedMsat], ['failed', 'interrupted', share, share], rid);
    assert.equal(h.ledger.get(rid)!.chargedMsat, share, `${rid}: the request shows its share`);
    assert.deepEqual([h.budgets.get(rid)!.state, h.budgets.get(rid)!.chargedMsat], ['settled', share], `${rid}: its budget is settled at its share`);
  }
  assert.equal(h.budgets.spentTodayMsat('test'), spentBefore - 90_000 + lostMsat, "the client's day counts what the cut requests cost, not what they reserved");
  assert.ok(!h.wallet.ctx.ledger.list({ kind: 'session_charge' }).some((e) => e.ref === `${id}.interrupted`), 'nothing booked on the session alone');
  const s = walletSession(h, id);
  assert.deepEqual([s.state, s.heldSat, s.flags], ['closed', 0, []], 'nothing unexplained at close: the provider is not flagged');
});

test('a provider that vanishes holding a session costs at most the cap, recorded as a loss with evidence', async (t) => {
  const { h, p } = await setup(t, { sessions: { providerCapSat: 60 } });
  const r = ok(await h.ask(MODEL.id, { stream: true }));
  const id = sessionOf(h, r.requestId);
  const heldSat = walletSession(h, id).heldSat;
  assert.ok(heldSat > 0 && heldSat <= 60);
  p.knobs.vanished = true;
  await h.sessions!.closeAll();
  const s = walletSession(h, id);
  assert.deepEqual([s.state, s.lostSat], ['lost', heldSat]);
  assert.ok(s.lostSat <= 60, 'bounded by the cap');
  const [loss] = h.wallet.ctx.ledger.list({ kind: 'session_loss' });
  assert.equal(loss.amount, -heldSat);
  assert.match(JSON.stringify(loss.evidence), /unreachable/);
  await h.accounted();
});

test('a provider whose balance shrinks more than the costs it reports is flagged, the difference booked as charged', async (t) => {
  // Balance mode: adjust_payment_for_tokens takes 1.5x the price, the cost reported is the honest one.
  const { h } = await setup(t, { knobs: { overchargeFactor: 1.5, overchargeReports: 'honest' } });
  const r = ok(await h.ask(MODEL.id, { stream: true }));
  const row = h.ledger.get(r.requestId)!;
  assert.ok(row.chargedMsat > row.reportedMsat!, `charged ${row.chargedMsat} > reported ${row.reportedMsat}`);
  assert.ok(row.flags.includes('cost_mismatch'), `flags: ${row.flags.join(',')}`);
  const id = sessionOf(h, r.requestId);
  assert.deepEqual(h.sessions!.flags(id), ['unreported_charge']);
  // Two at once: the node's word is taken per request, and the balance is checked once quiet.
  const both = await Promise.all([h.ask(MODEL.id, { stream: true }), h.ask(MODEL.id, { stream: true })]);
  for (const b of both) ok(b);
  await until(() => walletSession(h, id).chargedMsat > row.chargedMsat + both.reduce((t2, b) => t2 + h.ledger.get(b.requestId)!.reportedMsat!, 0));
  assert.ok(h.wallet.ctx.ledger.list({ kind: 'session_charge' }).some((e) => (e.ref ?? "").startsWith(`${id}.unreported.`)), 'the shrink is booked as charged');
  await h.sessions!.closeAll();
  await h.accounted();
  assert.deepEqual(walletSession(h, id).flags, [], 'nothing left unexplained at close');
});

test('failover before the first byte works in session mode: a failing provider costs nothing, the next one serves from its own session', async (t) => {
  // The cheap one's upstream answers 503: in balance mode the node releases the reservation (proxy.py).
  const { h } = await setup(t, { knobs: { failureRate: 1, failureStatus: 503 }, dearer: {} });
  const r = ok(await h.ask(MODEL.id, { stream: true }));
  const attempts = h.ledger.attempts(r.requestId);
  assert.deepEqual(attempts.map((a) => [a.status, a.errorCode, a.chargedMsat]), [['failed', 'upstream_error', 0], ['succeeded', null, attempts[1].chargedMsat]]);
  assert.ok(attempts.every((a) => a.sessionId !== null), 'both attempts paid from a session');
  assert.notEqual(attempts[0].sessionId, attempts[1].sessionId, 'one session per provider');
  assert.equal(r.acceptedWith!.failedAttempts, 1);
  assert.equal(h.payments.session(attempts[0].sessionId!)!.chargedMsat, 0, 'the failed provider charged nothing');
  await h.sessions!.closeAll();
  await h.accounted();
});

test('a provider down when its session is refunded is written off with evidence, asked again at the next start, and the refund corrects the loss', async (t) => {
  const { h, p } = await setup(t);
  const r = ok(await h.ask(MODEL.id, { stream: true }));
  const id = sessionOf(h, r.requestId);
  const heldSat = walletSession(h, id).heldSat;
  p.knobs.dead = true; // port closed; the node keeps its balances
  await eventually(() => fetch(`${p.url}/v1/info`).then(() => false, () => true));
  await h.sessions!.closeAll();
  assert.deepEqual([walletSession(h, id).state, walletSession(h, id).lostSat], ['lost', heldSat]);
  await h.accounted();
  p.knobs.dead = false;
  await eventually(() => fetch(`${p.url}/v1/info`).then((res) => res.ok, () => false));
  const next = new SessionManager({ db: h.db, payments: h.payments, clock: () => h.clock.now, sleep: async () => {} });
  assert.equal(await next.recover(), 1, 'the written-off session is asked again');
  await h.accounted();
  const s = walletSession(h, id);
  assert.deepEqual([s.state, s.lostSat, s.heldSat], ['closed', 0, 0]);
  assert.ok(s.refundedSat > 0);
});

/** Resolves once `cond` holds (the world's port opens and closes in the background). */
async function eventually(cond: () => Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setImmediate(r));
}

test("a provider's sessions are refunded when its breaker opens", async (t) => {
  // Its upstream answers 503 every time: in balance mode the node releases each reservation.
  const { h } = await setup(t, { knobs: { failureRate: 1, failureStatus: 503 } });
  t.after(h.sessions!.followBreakers(h.routing.breakers));
  const first = await h.ask(MODEL.id, { stream: true });
  assert.ok(first.errorWith, 'the provider failed');
  const id = sessionOf(h, first.requestId);
  assert.equal(walletSession(h, id).state, 'open');
  for (let i = 0; i < 2; i++) assert.ok((await h.ask(MODEL.id, { stream: true })).errorWith);
  assert.equal(h.routing.breakers.views().find((b) => b.model_id === null)?.state, 'open');
  await eventually(async () => walletSession(h, id).state !== 'open');
  await h.accounted();
  const s = walletSession(h, id);
  assert.deepEqual([s.state, s.heldSat, s.chargedMsat], ['closed', 0, 0], 'every sat deposited came back');
});
