// Hostile providers end to end (issue 13): the lying providers of test/world/scenarios/hostile.json,
// each beside an honest provider dearer than it, driven through the real request path (wallet,
// market, router, lifecycle, books). For each: the client gets a clear result, the lie is
// contained (timeout, size limit, flag, demotion) and every sat is accounted for. Each hostile
// provider serves a model of its own (`m-<name>`) with its own honest fallback, so one
// provider's breaker and statistics never touch another test.
// (The impostor - a 38421 event naming another provider's URL - is a market matter, tested with
// a real relay in test/daemon/market.test.ts.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startWorld, type Scenario, type World } from '../world/index.ts';
import { harness, type Harness } from './requests/lifecycle-fixture.ts';

const HOSTILE = JSON.parse(fs.readFileSync(fileURLToPath(new URL('../world/scenarios/hostile.json', import.meta.url)), 'utf8')) as Scenario & {
  providers: { name: string; knobs?: Record<string, unknown>; poolSat?: number; mints: string[] }[];
};
const LIARS = ['underreporter', 'generous', 'rogue-change', 'spent-change', 'endless', 'huge', 'misshapen', 'nan-usage'] as const;
type Liar = (typeof LIARS)[number];

// The hostile file's prices (0.02/0.08 sat per token against the honest 0.03/0.12); a small
// context keeps each token near what a 40-token answer costs.
const model = (id: string, prompt: number, completion: number) => ({ id, promptSatsPerToken: prompt, completionSatsPerToken: completion, contextLength: 1000, maxCompletionTokens: 200 });
const SCENARIO: Scenario = {
  seed: HOSTILE.seed,
  mints: HOSTILE.mints,
  nwcBalanceSat: 0,
  providers: LIARS.flatMap((name) => {
    const liar = HOSTILE.providers.find((p) => p.name === name)!;
    return [
      { name, announce: false, mints: liar.mints, ...(liar.poolSat ? { poolSat: liar.poolSat } : {}), knobs: liar.knobs, models: [model(`m-${name}`, 0.02, 0.08)] },
      { name: `honest-${name}`, announce: false, mints: ['trusted'], models: [model(`m-${name}`, 0.03, 0.12)] },
    ];
  }),
};

let world: World;
let h: Harness;
const idOf = (name: string) => h.market.providers().find((p) => p.url === world.provider(name).url)!.id;
const servedBy = (requestId: string) => world.providers.find((p) => p.url === h.ledger.get(requestId)!.providerUrl)?.name;
const trustedSat = () => h.wallet.store.balances().filter((b) => b.unit === 'sat' && b.mint === world.mint('trusted').url).reduce((t, b) => t + b.unspent, 0);
const rogueSat = () => h.wallet.store.balances().filter((b) => b.mint === world.mint('rogue').url).reduce((t, b) => t + b.unspent + b.pending, 0);
const answered = (r: { errorWith?: { message: string }; requestId: string }) => {
  assert.equal(r.errorWith, undefined, r.errorWith?.message);
  return r.requestId;
};
const ask = (name: Liar, o: Parameters<Harness['ask']>[1] = {}) => h.ask(`m-${name}`, o);

before(async () => {
  world = await startWorld(SCENARIO);
  // Only the trusted mint is ours: rogue-change's change comes from a mint we never listed.
  h = await harness({ ...world, mints: [world.mint('trusted')] }, { fund: { trusted: 8000 } });
});
after(async () => {
  await h?.close();
  await world?.stop();
});

test('an underreporting provider serves, is flagged overcharged with its figures, and is avoided after three requests', async () => {
  // Pinned: after its first charge, ranking by what it really charges already prefers the honest one.
  for (let i = 0; i < 3; i++) {
    const id = answered(await ask('underreporter', { maxTokens: 200, provider: 'underreporter' }));
    assert.equal(servedBy(id), 'underreporter');
    const [a] = h.ledger.attempts(id);
    assert.deepEqual(a.flags, ['overcharged', 'cost_mismatch']);
    assert.equal(a.chargedMsat, (a.sentSat - a.changeSat - a.feeSat) * 1000);
    assert.ok(a.reportedMsat! < a.chargedMsat, 'it says it kept less than it did');
  }
  const rank = h.routing.stats.rank(idOf('underreporter'));
  assert.equal(rank.avoid?.reason, 'overcharging', 'satroute providers shows it avoided for overcharging');
  const next = answered(await ask('underreporter'));
  assert.equal(servedBy(next), 'honest-underreporter', 'no longer routed to');
  await h.accounted();
});

test('a generous provider (change worth more than was sent) is charged 0, never less, flagged change_surplus and not ranked cheaper', async () => {
  await h.accounted();
  const before = trustedSat();
  const id = answered(await ask('generous'));
  assert.equal(servedBy(id), 'generous');
  await h.accounted();
  const [a] = h.ledger.attempts(id);
  assert.ok(a.changeSat > a.sentSat - a.feeSat, `change ${a.changeSat} sat for ${a.sentSat} sent`);
  assert.equal(a.chargedMsat, 0, 'charged nothing, never a negative charge');
  assert.ok(a.flags.includes('change_surplus'));
  assert.equal(h.ledger.get(id)!.chargedMsat, 0);
  assert.equal(trustedSat() - before, a.changeSat - a.sentSat, 'the wallet is up by the whole change');
  const { auditReport } = await import('../../daemon/requests/audit.ts');
  const row = auditReport(h.db, {}, { attempts: true }).attempts!.find((r) => r.request_id === id)!;
  assert.equal(row.surplus_sats, a.changeSat + a.feeSat - a.sentSat, 'the surplus is its own figure in the audit');
  // Its statistics never saw a cheap charge: the ratio is no better than the neutral 1.
  const rank = h.routing.stats.rank(idOf('generous'));
  assert.ok(rank.chargeRatio >= 1, `charge ratio ${rank.chargeRatio}`);
  // A second surplus: avoided like a provider whose change is invalid.
  answered(await ask('generous', { provider: 'generous' }));
  await h.accounted();
  assert.equal(h.routing.stats.rank(idOf('generous')).avoid?.reason, 'invalid_change');
  assert.equal(servedBy(answered(await ask('generous'))), 'honest-generous');
  await h.accounted();
});

for (const [name, evidence] of [['rogue-change', 'a mint nobody listed'], ['spent-change', 'change already spent']] as const) {
  test(`a provider whose change is ${evidence}: the answer arrives, the whole token is charged, change_invalid with evidence, then it is avoided`, async () => {
    const rogueBefore = rogueSat();
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const id = answered(await ask(name, { provider: name }));
      assert.equal(servedBy(id), name);
      ids.push(id);
      await h.accounted();
      const [a] = h.ledger.attempts(id);
      assert.ok(a.flags.includes('change_invalid'), `flags ${a.flags}`);
      assert.equal(a.changeSat, 0);
      assert.equal(a.chargedMsat, (a.sentSat - a.feeSat) * 1000, 'charged everything sent');
      const change = h.payments.outcome(a.paymentId!)!.changes;
      assert.equal(change.length, 1);
      assert.equal(change[0].state, 'invalid');
      assert.ok(change[0].error || change[0].evidence, 'the refusal keeps its evidence');
    }
    assert.equal(rogueSat(), rogueBefore, 'no sat of a mint we do not trust in the balance');
    assert.equal(h.routing.stats.rank(idOf(name)).avoid?.reason, 'invalid_change');
    assert.equal(servedBy(answered(await ask(name))), `honest-${name}`);
    await h.accounted();
  });
}

test('an endless answer: before the first byte it times out and fails over; mid-stream it ends with provider_failed', async () => {
  const short = h.lifecycleWith({ timeouts: { totalMs: 1_500 } });
  const id = answered(await ask('endless', { lifecycle: short }));
  assert.equal(servedBy(id), 'honest-endless');
  const attempts = h.ledger.attempts(id);
  assert.equal(attempts.length, 2);
  assert.equal(attempts[0].errorCode, 'timeout');
  assert.ok(attempts[0].changeSat > 0, 'the change handed back with the answer that never ended is banked');
  await h.accounted();

  const streamed = await ask('endless', { lifecycle: short, stream: true, provider: 'endless' });
  assert.equal(streamed.errorWith?.code, 'provider_failed');
  assert.ok(streamed.chunks.length > 0, 'the stream had started');
  assert.equal(h.ledger.attempts(streamed.requestId).length, 1, 'never a silent switch mid-stream');
  await h.accounted();
  const breaker = h.routing.breakers.views().find((b) => b.provider_id === idOf('endless') && b.model_id === null);
  assert.ok(breaker && breaker.failures >= 2, `the breaker counts both failures: ${JSON.stringify(breaker)}`);
});

test('a 100 MB answer is cut at the size limit (too_large), fails over, and the daemon does not hold it', async () => {
  const rss = process.memoryUsage().rss;
  const id = answered(await ask('huge'));
  assert.equal(servedBy(id), 'honest-huge');
  const [first] = h.ledger.attempts(id);
  assert.equal(first.errorCode, 'too_large');
  const grewMb = (process.memoryUsage().rss - rss) / 2 ** 20;
  assert.ok(grewMb < 100, `memory grew ${grewMb.toFixed(0)} MB`);
  await h.accounted();
});

test('valid JSON of the wrong shape is malformed: failover before the first byte, the client gets the next answer', async () => {
  const r = await ask('misshapen');
  const id = answered(r);
  assert.equal(servedBy(id), 'honest-misshapen');
  assert.ok((r.body as { choices: unknown[] }).choices.length > 0);
  const [first] = h.ledger.attempts(id);
  assert.equal(first.errorCode, 'malformed');
  assert.equal(first.status, 'failed');
  await h.accounted();
});

test('NaN usage: the answer arrives, usage_missing, charged what it kept', async () => {
  const id = answered(await ask('nan-usage'));
  assert.equal(servedBy(id), 'nan-usage');
  const [a] = h.ledger.attempts(id);
  assert.ok(a.flags.includes('usage_missing'), `flags ${a.flags}`);
  assert.equal(a.promptTokens, null, 'no NaN reaches the books');
  assert.equal(a.chargedMsat, (a.sentSat - a.changeSat - a.feeSat) * 1000);
  await h.accounted();
});
