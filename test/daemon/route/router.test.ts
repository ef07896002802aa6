import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NoProviderError, NoQualifyingModelError } from '../../../daemon/route/errors.ts';
import type { RoutePlan, RouteRequest } from '../../../daemon/route/router.ts';
import { requiredMsat } from '../../world/provider/pricing.ts';
import { gpt, MINT, routeWorld, type RouteWorld } from './fixture.ts';

const names = (plan: RoutePlan) => plan.attempts.map((a) => a.providerName);

type Behaviour = { ok: true; chargeFactor?: number; latencyMs?: number; promptFactor?: number } | { ok: false; refunded?: boolean } | { ok: true; changeInvalid: true };

/** Serve `n` requests: each provider behaves as `behave` says; attempts go in plan order until one succeeds. */
function serve(w: RouteWorld, n: number, behave: (provider: string, i: number) => Behaviour, req: Partial<RouteRequest> = {}): string[] {
  const served: string[] = [];
  for (let i = 0; i < n; i++) {
    const plan = w.router.plan(w.request(req));
    for (const a of plan.attempts) {
      const b = behave(a.providerName, i);
      w.clock.now += 10;
      if (!b.ok) {
        w.router.report(a, { breaker: { kind: 'failure', scope: 'provider', error: 'HTTP 502' }, refunded: b.refunded });
        continue;
      }
      const expected = a.expected.costMsat;
      if ('changeInvalid' in b) {
        // served; the change proves invalid at the swap, later: the provider kept the whole token
        w.router.report(a, { breaker: { kind: 'success' } });
        w.router.late({ providerId: a.providerId, modelId: a.model, expectedMsat: expected, chargedMsat: a.tokenSat * 1000, changeInvalid: true });
      } else {
        const usage = { promptTokens: Math.round(a.estimatedPromptTokens * (b.promptFactor ?? 1)), completionTokens: a.expected.completionTokens };
        w.router.report(a, { breaker: { kind: 'success' }, latencyMs: b.latencyMs, expectedMsat: expected, chargedMsat: Math.round(expected * (b.chargeFactor ?? 1)), usage });
      }
      served.push(a.providerName);
      break;
    }
    w.router.release(plan);
  }
  return served;
}

test('the cheapest provider is tried first, then the next cheapest; at most 3 are planned', () => {
  const w = routeWorld([
    { name: 'Dear', models: [gpt(0.00004, 0.0001)] },
    { name: 'Cheap', models: [gpt(0.00001, 0.00003)] },
    { name: 'Mid', models: [gpt(0.00002, 0.00006)] },
    { name: 'Dearer', models: [gpt(0.00008, 0.0002)] },
    { name: 'Aliased', models: [gpt(0.00003, 0.00009, { id: 'other-name', aliasIds: ['gpt-x'] })] },
  ]);
  const plan = w.router.plan(w.request());
  assert.deepEqual(names(plan), ['Cheap', 'Mid', 'Aliased']);
  assert.equal(plan.attempts[2].model, 'other-name', 'served under an alias: its own model id is sent');
  assert.ok(plan.attempts[0].expected.costMsat < plan.attempts[1].expected.costMsat);
  assert.deepEqual(plan.skipped, []);
});

test('a provider cheap on paper that overcharges is ranked by what it really charges after a few requests', () => {
  const w = routeWorld([
    { name: 'Sly', models: [gpt(0.00001, 0.00003)] },
    { name: 'Honest', models: [gpt(0.0000108, 0.0000324)] }, // 8 % dearer on paper
  ]);
  const served = serve(w, 10, (p) => ({ ok: true, chargeFactor: p === 'Sly' ? 1.15 : 1 }));
  assert.equal(served[0], 'Sly', 'tried first on its list price');
  assert.deepEqual(names(w.router.plan(w.request())), ['Honest', 'Sly']);
  assert.deepEqual(served.slice(-5), ['Honest', 'Honest', 'Honest', 'Honest', 'Honest']);
});

test('an overcharger past the threshold is avoided, and the plan says why', () => {
  const w = routeWorld([
    { name: 'Sly', models: [gpt(0.00001, 0.00003)] },
    { name: 'Honest', models: [gpt(0.00003, 0.00009)] },
  ]);
  serve(w, 3, (p) => ({ ok: true, chargeFactor: p === 'Sly' ? 2 : 1 }), { provider: 'Sly' });
  const plan = w.router.plan(w.request());
  assert.deepEqual(names(plan), ['Honest']);
  assert.equal(plan.skipped.length, 1);
  assert.equal(plan.skipped[0].name, 'Sly');
  assert.equal(plan.skipped[0].reason, 'overcharging');
  assert.match(plan.skipped[0].detail, /charged 1\.\d\dx its listed price/);
});

test('a provider returning invalid change is avoided after it happens twice', () => {
  const w = routeWorld([
    { name: 'Broken', models: [gpt(0.00001, 0.00003)] },
    { name: 'Fine', models: [gpt(0.00003, 0.00009)] },
  ]);
  serve(w, 1, () => ({ ok: true, changeInvalid: true }));
  assert.equal(names(w.router.plan(w.request()))[0], 'Fine', 'its real cost (the whole token) already ranks it down');
  serve(w, 1, () => ({ ok: true, changeInvalid: true }), { provider: 'Broken' });
  const plan = w.router.plan(w.request());
  assert.deepEqual(names(plan), ['Fine']);
  assert.equal(plan.skipped[0].reason, 'invalid_change');
});

test('a provider that fails often is ranked below a reliable one costing a little more', () => {
  const w = routeWorld([
    { name: 'Flaky', models: [gpt(0.00001, 0.00003)] },
    { name: 'Steady', models: [gpt(0.000013, 0.000039)] }, // 30 % dearer on paper
  ]);
  // Flaky fails every other time: never 3 in a row, so its breaker stays closed
  serve(w, 8, (p, i) => (p === 'Flaky' && i % 2 === 0 ? { ok: false } : { ok: true }));
  assert.equal(w.breakers.get('pk-Flaky:d')?.state, 'closed');
  assert.deepEqual(names(w.router.plan(w.request())), ['Steady', 'Flaky']);
});

test('a provider failing 30 % of the time but refunding every failure stays first over an honest one 7 % dearer; unrefunded, it does not', () => {
  // the cost bench's p03 against p05: its failures cost a retry, not money, so per success it is still cheaper
  const market = [
    { name: 'Flaky', models: [gpt(0.00001, 0.00003)] },
    { name: 'Steady', models: [gpt(0.0000107, 0.0000321)] },
  ];
  const fails = (p: string, i: number) => p === 'Flaky' && [2, 5, 8].includes(i % 10); // 3 of every 10
  for (const refunded of [true, false]) {
    const w = routeWorld(market);
    const served = serve(w, 20, (p, i) => (fails(p, i) ? { ok: false, refunded } : { ok: true }));
    if (refunded) {
      assert.deepEqual(names(w.router.plan(w.request())), ['Flaky', 'Steady']);
      assert.equal(served.filter((p) => p === 'Flaky').length, 14, 'served every request it did not fail');
      assert.ok(w.stats.rank('pk-Flaky:d').successRate < 0.8, 'its failures still count in its success rate');
    } else {
      assert.deepEqual(names(w.router.plan(w.request())), ['Steady', 'Flaky']);
      assert.deepEqual(served.slice(3), Array(17).fill('Steady'));
    }
  }
});

test('concurrent requests send one request, not all, to a provider never seen; its answer decides the next ones', () => {
  const w = routeWorld([
    { name: 'Sly', models: [gpt(0.00001, 0.00003)] }, // cheapest on paper, overcharges 1.3x
    { name: 'Honest', models: [gpt(0.0000108, 0.0000324)] }, // 8 % dearer on paper
  ]);
  serve(w, 3, () => ({ ok: true }), { provider: 'Honest' });
  const plans = Array.from({ length: 4 }, () => w.router.plan(w.request()));
  assert.deepEqual(plans.map((p) => p.attempts[0].providerName), ['Sly', 'Honest', 'Honest', 'Honest']);
  assert.deepEqual(names(plans[1]), ['Honest', 'Sly'], 'still a fallback');
  const trial = plans[0].attempts[0];
  w.router.report(trial, { breaker: { kind: 'success' }, expectedMsat: trial.expected.costMsat, chargedMsat: Math.round(trial.expected.costMsat * 1.3) });
  for (const p of plans) w.router.release(p);
  assert.deepEqual(names(w.router.plan(w.request())), ['Honest', 'Sly'], 'after one 1.3x charge the overcharger is no longer chosen first');
  const fresh = routeWorld([{ name: 'Only', models: [gpt(0.00001, 0.00003)] }]);
  assert.deepEqual([fresh.router.plan(fresh.request()), fresh.router.plan(fresh.request())].map(names), [['Only'], ['Only']], 'the only provider still serves everyone');
});

test('a new provider starts neutral: cheapest on paper, it is tried before a proven one', () => {
  const w = routeWorld([
    { name: 'Proven', models: [gpt(0.00002, 0.00006)] },
    { name: 'Newcomer', models: [gpt(0.000019, 0.000057)] },
  ]);
  serve(w, 20, () => ({ ok: true, latencyMs: 300 }), { provider: 'Proven' });
  assert.equal(w.stats.rank('pk-Newcomer:d').successRate, 1);
  assert.deepEqual(names(w.router.plan(w.request())), ['Newcomer', 'Proven']);
});

test('prompt tokens are corrected by what each provider reports: one that counts double ranks as twice the prompt', () => {
  const long = { model: 'gpt-x', messages: [{ role: 'user', content: 'x'.repeat(4000) }], max_tokens: 10 };
  const w = routeWorld([
    { name: 'Inflates', models: [gpt(0.00001, 0.00003)] },
    { name: 'Plain', models: [gpt(0.000015, 0.00003)] },
  ]);
  const served = serve(w, 6, (p) => ({ ok: true, promptFactor: p === 'Inflates' ? 2 : 1 }), { body: long });
  const n = served.filter((p) => p === 'Inflates').length;
  const plan = w.router.plan(w.request({ body: long }));
  assert.deepEqual(names(plan), ['Plain', 'Inflates']);
  const [plain, inflates] = plan.attempts;
  assert.equal(plain.expected.promptTokens, plain.estimatedPromptTokens);
  // n reports of 2x against a prior of 1 (weight 2): (2n + 2) / (n + 2), not compounding on its own correction
  assert.ok(n >= 2);
  assert.ok(Math.abs(inflates.expected.promptTokens / inflates.estimatedPromptTokens - (2 * n + 2) / (n + 2)) < 0.01, `${n}: ${inflates.expected.promptTokens / inflates.estimatedPromptTokens}`);
});

test('the token is sized to what the node checks (the world provider requiredMsat), never above max_cost', () => {
  const spec = gpt(0.00002, 0.00006, { contextLength: 16_000, maxCompletionTokens: 4096, maxCostSats: 30 });
  const w = routeWorld([{ name: 'A', models: [spec] }]);
  for (const body of [
    { model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 },
    { model: 'gpt-x', messages: [{ role: 'user', content: 'a'.repeat(30_000) }] },
    { model: 'gpt-x', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'why?' }], max_tokens: 100_000 },
    { model: 'gpt-x', input: 'embeddings have no messages' },
  ]) {
    const [a] = w.router.plan(w.request({ body })).attempts;
    assert.equal(a.reserveMsat, requiredMsat(spec, body), JSON.stringify(body).slice(0, 80));
    assert.equal(a.tokenSat, Math.ceil(a.reserveMsat / 1000));
    assert.ok(a.reserveMsat <= 30_000);
  }
});

test("the provider's exact mint spelling goes into the token; our balance is found by the normalised URL", () => {
  const w = routeWorld([{ name: 'A', models: [gpt(0.00002, 0.00006)], mints: ['HTTPS://Mint.Example/'] }]);
  const [a] = w.router.plan(w.request()).attempts;
  assert.equal(a.mint, MINT);
  assert.equal(a.tokenMint, 'HTTPS://Mint.Example/');
});

test('every skipped provider keeps its reason', () => {
  const w = routeWorld([
    { name: 'OtherMint', models: [gpt(0.00001, 0.00003)], mints: ['https://elsewhere.example'] },
    { name: 'Poor', models: [gpt(0.00001, 0.00003)], mints: ['https://small.example'] },
    { name: 'Pricey', models: [gpt(0.00001, 0.00003, { maxCostSats: 500 })] },
    { name: 'Open', models: [gpt(0.00001, 0.00003)] },
    { name: 'Limited', models: [gpt(0.00001, 0.00003)] },
    { name: 'Ok', models: [gpt(0.00002, 0.00006)] },
  ]);
  serve(w, 3, () => ({ ok: false }), { provider: 'Open' });
  const lim = w.router.plan(w.request({ provider: 'Limited' }));
  w.router.report(lim.attempts[0], { breaker: { kind: 'rate_limited', retryAfterMs: 60_000 } });
  const body = { model: 'gpt-x', messages: [{ role: 'user', content: 'hello' }] }; // no max_tokens: the node reserves the completion ceiling
  const plan = w.router.plan(w.request({ body, maxSats: 100, balances: new Map([[MINT, 10_000], ['https://small.example', 0]]) }));
  assert.deepEqual(names(plan), ['Ok']);
  const why = Object.fromEntries(plan.skipped.map((s) => [s.name, s.reason]));
  assert.deepEqual(why, { OtherMint: 'no_common_mint', Poor: 'insufficient_balance', Pricey: 'over_max_sats', Open: 'breaker_open', Limited: 'rate_limited' });
  const budget = w.router.plan(w.request({ body, budgetSats: 5 }));
  assert.ok(budget.skipped.some((s) => s.name === 'Pricey' && s.reason === 'over_budget'));
  assert.throws(
    () => w.router.plan(w.request({ provider: 'OtherMint' })),
    (err: unknown) => err instanceof NoProviderError && err.code === 'no_provider' && err.skipped[0].reason === 'no_common_mint',
  );
});

test('half-open: of 20 concurrent requests exactly one probes the recovering provider, the rest go elsewhere', async () => {
  const w = routeWorld([
    { name: 'Recovering', models: [gpt(0.00001, 0.00003)] },
    { name: 'Backup', models: [gpt(0.00002, 0.00006)] },
  ]);
  serve(w, 3, () => ({ ok: false }), { provider: 'Recovering' });
  w.clock.now += 30_000;
  const plans = await Promise.all(
    Array.from({ length: 20 }, async () => {
      await new Promise((r) => setImmediate(r));
      return w.router.plan(w.request());
    }),
  );
  const probing = plans.filter((p) => p.attempts.some((a) => a.providerName === 'Recovering'));
  assert.equal(probing.length, 1);
  assert.deepEqual(names(probing[0]), ['Recovering', 'Backup']);
  for (const p of plans) if (p !== probing[0]) assert.deepEqual(names(p), ['Backup']);
  assert.ok(plans.filter((p) => p !== probing[0]).every((p) => p.skipped[0]?.reason === 'probe_in_flight'));
  w.router.report(probing[0].attempts[0], { breaker: { kind: 'success' } });
  for (const p of plans) w.router.release(p);
  assert.equal(w.breakers.get('pk-Recovering:d')?.state, 'closed');
  assert.deepEqual(names(w.router.plan(w.request())), ['Recovering', 'Backup']);
});

test('a half-open provider is probed first; a plan released unused frees the probe for the next request', () => {
  const w = routeWorld([
    { name: 'Backup', models: [gpt(0.00001, 0.00003)] },
    { name: 'Recovering', models: [gpt(0.00002, 0.00006)] },
  ]);
  serve(w, 3, () => ({ ok: false }), { provider: 'Recovering' });
  w.clock.now += 30_000;
  const first = w.router.plan(w.request());
  assert.deepEqual(names(first), ['Recovering', 'Backup'], 'its probe goes first, though it ranks second');
  assert.deepEqual(names(w.router.plan(w.request())), ['Backup']);
  w.router.release(first); // e.g. the caller went away before anything was sent
  const next = w.router.plan(w.request());
  assert.deepEqual(names(next), ['Recovering', 'Backup']);
  w.router.report(next.attempts[0], { breaker: { kind: 'failure', scope: 'provider', error: 'timeout' } });
  w.router.report(next.attempts[1], { breaker: { kind: 'success' } });
  w.router.release(next);
  assert.equal(w.breakers.get('pk-Recovering:d')?.state, 'open');
  assert.deepEqual(names(w.router.plan(w.request())), ['Backup']);
});

test('when every candidate is open, one probe goes to the one that failed longest ago', () => {
  const w = routeWorld([
    { name: 'A', models: [gpt(0.00001, 0.00003)] },
    { name: 'B', models: [gpt(0.00002, 0.00006)] },
  ]);
  serve(w, 3, () => ({ ok: false }), { provider: 'B' });
  w.clock.now += 1_000;
  serve(w, 3, () => ({ ok: false }), { provider: 'A' });
  const plan = w.router.plan(w.request());
  assert.equal(plan.forcedProbe, true);
  assert.deepEqual(names(plan), ['B']);
  assert.deepEqual(plan.skipped.map((s) => [s.name, s.reason]), [['A', 'breaker_open']]);
  assert.throws(() => w.router.plan(w.request()), (err: unknown) => err instanceof NoProviderError && err.skipped.length === 2, 'one probe at a time');
  w.router.report(plan.attempts[0], { breaker: { kind: 'success' } });
  assert.deepEqual(names(w.router.plan(w.request())), ['B']);
});

test('a pinned provider is the only one tried, found by id, URL or name', () => {
  const w = routeWorld([
    { name: 'Cheap', models: [gpt(0.00001, 0.00003)] },
    { name: 'Chosen', models: [gpt(0.00003, 0.00009)] },
  ]);
  for (const pin of ['pk-Chosen:d', 'https://chosen.example/', 'chosen']) assert.deepEqual(names(w.router.plan(w.request({ provider: pin }))), ['Chosen'], pin);
  assert.throws(() => w.router.plan(w.request({ provider: 'nobody' })), NoProviderError);
});

test('the balanced policy weighs latency: a slow provider loses to a fast one costing a little more', () => {
  const w = routeWorld([
    { name: 'Slow', models: [gpt(0.00001, 0.00003)] },
    { name: 'Fast', models: [gpt(0.000012, 0.000036)] },
  ]);
  serve(w, 6, (p) => ({ ok: true, latencyMs: p === 'Slow' ? 4_000 : 200 }), { provider: 'Slow' });
  serve(w, 6, () => ({ ok: true, latencyMs: 200 }), { provider: 'Fast' });
  assert.deepEqual(names(w.router.plan(w.request())), ['Slow', 'Fast']);
  assert.deepEqual(names(w.router.plan(w.request({ policy: 'balanced' }))), ['Fast', 'Slow']);
});

test('model "auto" picks the cheapest model above the quality floor, and says clearly when none qualifies', () => {
  const specs = [
    { name: 'A', models: [gpt(0.00001, 0.00003, { id: 'small' }), gpt(0.0001, 0.0003, { id: 'large' })] },
    { name: 'B', models: [gpt(0.00004, 0.00012, { id: 'medium', aliasIds: ['vendor/medium'] })] },
  ];
  const w = routeWorld(specs, { auto: { minQuality: 60, quality: { small: 40, 'vendor/medium': 70, large: 90 } } });
  const plan = w.router.plan(w.request({ model: 'auto' }));
  assert.deepEqual(plan.attempts.map((a) => [a.providerName, a.model]), [['B', 'medium'], ['A', 'large']]);
  const strict = routeWorld(specs, { auto: { minQuality: 95, quality: { large: 90 } } });
  assert.throws(() => strict.router.plan(strict.request({ model: 'auto' })), (err: unknown) => err instanceof NoQualifyingModelError && /quality score of at least 95/.test(err.message));
  const none = routeWorld(specs);
  assert.throws(() => none.router.plan(none.request({ model: 'auto' })), NoQualifyingModelError);
  const unoffered = routeWorld(specs, { auto: { minQuality: 50, quality: { 'gpt-9': 99 } } });
  assert.throws(() => unoffered.router.plan(unoffered.request({ model: 'auto' })), NoQualifyingModelError);
});

test('an unknown model is a clear no_provider error', () => {
  const w = routeWorld([{ name: 'A', models: [gpt(0.00001, 0.00003)] }]);
  assert.throws(() => w.router.plan(w.request({ model: 'nope' })), (err: unknown) => err instanceof NoProviderError && /no known provider serves nope/.test(err.message));
});

test('stopping the scan early never changes the plan: the same attempts as looking at every offer', () => {
  let seed = 5;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let market = 0; market < 16; market++) {
    // half the markets with few price levels: many ties on list price
    const level = (max: number) => (market % 2 ? max * (1 + Math.floor(rand() * 3)) : max * rand());
    const specs = Array.from({ length: 40 }, (_, i) => ({
      name: `P${market}x${i}`,
      models: [gpt(0.000001 + level(0.00004), 0.000003 + level(0.0001), rand() < 0.3 ? { id: 'alias-host', aliasIds: ['gpt-x'] } : {})],
      mints: rand() < 0.1 ? ['https://elsewhere.example'] : [MINT],
    }));
    const w = routeWorld(specs, { random: rand });
    // history: over- and under-charging, failures, prompt and completion counts that differ by provider
    for (const s of specs) {
      const id = `pk-${s.name}:d`;
      const n = Math.floor(rand() * 5);
      for (let k = 0; k < n && market % 4 !== 1; k++) {
        w.stats.observe({ providerId: id, modelId: s.models[0].id, ok: rand() < 0.8, latencyMs: rand() * 3000, expectedMsat: 1000, chargedMsat: Math.round(1000 * (0.8 + rand() * 0.6)), usage: { estimatedPromptTokens: 30, promptTokens: Math.round(30 * (0.7 + rand())), completionTokens: Math.round(rand() * 400) } });
      }
      if (rand() < 0.1) for (let k = 0; k < 3; k++) w.breakers.record(w.breakers.acquire(id, s.models[0].id)!, { kind: 'failure', scope: 'provider', error: 'x' });
    }
    for (const body of [
      { model: 'gpt-x', messages: [{ role: 'user', content: 'short' }], max_tokens: 20 },
      { model: 'gpt-x', messages: [{ role: 'user', content: 'long '.repeat(2000) }] },
      { model: 'gpt-x', messages: [{ role: 'user', content: 'medium '.repeat(40) }], max_tokens: 1000 },
    ]) {
      for (const policy of ['cheapest', 'balanced'] as const) {
        const fast = w.router.plan(w.request({ body, policy }));
        w.router.release(fast);
        const full = w.router.plan(w.request({ body, policy, explain: true }));
        w.router.release(full);
        assert.deepEqual(fast.attempts.map((a) => [a.providerName, a.score]), full.attempts.map((a) => [a.providerName, a.score]));
        assert.ok(full.skipped.length >= fast.skipped.length);
      }
    }
  }
});
