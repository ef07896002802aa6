// callProvider against hostile test/world providers (provider/hostile.ts): each lie ends in a
// clear typed result, the money the node handed back is never lost with the answer, and what
// the node claimed is refused field by field or flagged - never counted as a sat. Where the
// charge matters, the attempt is reconciled (daemon/requests/reconcile.ts) at the price the
// provider lists, as the request ledger will.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { getEncodedToken, sumProofs, Wallet, type Proof } from '@cashu/cashu-ts';
import { LightningNetwork } from '../world/lightning.ts';
import { startMint, type TestMint } from '../world/mint.ts';
import { startProvider, type ModelSpec, type ProviderKnobs, type TestProvider } from '../world/provider.ts';
import { callProvider, createProviderAgents, DEFAULT_MAX_STREAM_BYTES, type CallOutcome, type CallRequest, type OkAnswer, type OkStream } from '../../protocol/provider-call.ts';
import { ProviderBodyTooLargeError, ProviderMalformedError, ProviderTimeoutError, type ProviderCallError } from '../../protocol/call-errors.ts';
import { ProviderClient } from '../../protocol/provider-client.ts';
import type { StreamItem } from '../../protocol/provider-stream.ts';
import { reconcile } from '../../daemon/requests/reconcile.ts';

// Dear enough that a lie about tokens is more than the sat rounding a reconciliation allows.
const CHAT: ModelSpec = { id: 'sim/chat', promptSatsPerToken: 0.2, completionSatsPerToken: 0.4, maxCostSats: 100 };
const QUESTION = 'What is the capital of France? Answer briefly.';
const BODY = { model: CHAT.id, messages: [{ role: 'user', content: QUESTION }], max_tokens: 100 };
// What the world bills for QUESTION: ceil(chars / 4) tokens each way at 200 / 400 msat.
const PROMPT = Math.ceil(QUESTION.length / 4);
const COMPLETION = Math.ceil(`sim-a heard: ${QUESTION}`.length / 4);
const COST_MSAT = PROMPT * 200 + COMPLETION * 400;
/** The token each request pays with (the node reserves less: its max_cost is 100 sats, less the unused budgets). */
const PAID = 20;
const OWED = PAID - Math.ceil(COST_MSAT / 1000);

let ln: LightningNetwork;
let mint: TestMint;
let rogue: TestMint;
const wallets = new Map<TestMint, { wallet: Wallet; pool: Proof[] }>();
const agents = createProviderAgents();

before(async () => {
  ln = new LightningNetwork();
  mint = await startMint({ lightning: ln });
  rogue = await startMint({ lightning: ln, name: 'rogue' });
  for (const [m, amount] of [[mint, 4000], [rogue, 200]] as const) {
    const wallet = new Wallet(m.url, { unit: 'sat' });
    await wallet.loadMint();
    const q = await wallet.createMintQuoteBolt11(amount);
    ln.pay(q.request);
    wallets.set(m, { wallet, pool: await wallet.mintProofsBolt11(amount, q.quote) });
  }
});

after(async () => {
  agents.destroy();
  await rogue?.stop();
  await mint?.stop();
});

async function pay(amount: number, at: TestMint = mint): Promise<string> {
  const w = wallets.get(at)!;
  const { keep, send } = await w.wallet.send(amount, w.pool);
  w.pool = keep;
  return getEncodedToken({ mint: at.url, unit: 'sat', proofs: send });
}

/** Swap a token in at its mint: proves it is real and returns its value. */
async function worth(token: string, at: TestMint = mint): Promise<number> {
  const w = wallets.get(at)!;
  const proofs = await w.wallet.receive(token);
  w.pool.push(...proofs);
  return sumProofs(proofs).toNumber();
}

async function provider(t: TestContext, knobs: Partial<ProviderKnobs>): Promise<TestProvider> {
  const p = await startProvider({ name: 'sim-a', relays: [], noAnnounce: true, mints: [mint.url], models: [CHAT], knobs });
  t.after(() => p.stop());
  return p;
}

function call(p: TestProvider, token: string, over: Partial<CallRequest> = {}): Promise<CallOutcome> {
  return callProvider({ providerUrl: p.url, endpoint: '/v1/chat/completions', body: BODY, payment: { kind: 'xcashu', token }, ...over }, { agents });
}

async function answer(p: TestProvider, over: Partial<CallRequest> = {}): Promise<OkAnswer> {
  const r = await call(p, await pay(PAID), over);
  assert.ok(r.kind === 'ok' && !r.stream, `an answer, not ${r.kind}`);
  return r;
}

async function stream(p: TestProvider, over: Partial<CallRequest> = {}): Promise<OkStream> {
  const r = await call(p, await pay(PAID), { body: { ...BODY, stream: true }, ...over });
  assert.ok(r.kind === 'ok' && r.stream, `a stream, not ${r.kind}`);
  return r;
}

/** Poll (real time, briefly) until the provider has caught up with a disconnect. */
async function waitUntil(cond: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function drain(events: AsyncIterable<StreamItem>): Promise<StreamItem[]> {
  const out: StreamItem[] = [];
  for await (const e of events) out.push(e);
  return out;
}

/** The call (or reading its stream) fails with `cls`; returns the error. */
async function failure<T extends ProviderCallError>(p: Promise<unknown>, cls: new (...a: never[]) => T): Promise<T> {
  let caught: unknown;
  await p.then(
    () => assert.fail(`expected ${cls.name}`),
    (err: unknown) => (caught = err),
  );
  assert.ok(caught instanceof cls, `${cls.name}, got ${String(caught)}`);
  return caught as T;
}

/** Reconcile a served attempt at the price the provider lists, with the change it really handed back. */
async function settle(p: TestProvider, r: { reported: OkAnswer['reported'] }, changeSat: number) {
  const [listed] = await new ProviderClient().models(p.url);
  return reconcile({ state: 'succeeded', price: listed.price!, usage: r.reported.usage, sentSat: PAID, feeSat: 0, changeSat, reportedMsat: r.reported.costMsat });
}

describe('a provider that reports fewer tokens than it bills', () => {
  test('is flagged overcharged at the tokens it admits to, and the charge counted is what it kept', async (t) => {
    const p = await provider(t, { usageReportFactor: 0.5 });
    const r = await answer(p);
    assert.deepEqual(r.reported.usage, { promptTokens: Math.floor(PROMPT / 2), completionTokens: Math.floor(COMPLETION / 2) });
    assert.equal(r.reported.costMsat, COST_MSAT);
    const change = await worth(r.changeToken!);
    assert.equal(change, OWED);
    const rec = await settle(p, r, change);
    assert.equal(rec.chargedMsat, (PAID - OWED) * 1000);
    assert.ok(rec.chargedMsat > rec.allowedMsat!);
    assert.deepEqual(rec.flags, ['overcharged']);
  });

  test('reporting the cost of those tokens as well adds a cost mismatch: its claim is below what it kept', async (t) => {
    const p = await provider(t, { usageReportFactor: 0.5, overchargeReports: 'honest' });
    const r = await answer(p);
    const rec = await settle(p, r, await worth(r.changeToken!));
    assert.ok(r.reported.costMsat! < rec.chargedMsat - 999);
    assert.deepEqual(rec.flags, ['overcharged', 'cost_mismatch']);
  });
});

describe('change that is not what a node owes', () => {
  test('more change than was sent is flagged with its surplus; the token is real and counts as change, not as a charge below zero', async (t) => {
    const p = await provider(t, { changeSurplus: 30 });
    await p.fund(await pay(40));
    const r = await answer(p);
    assert.deepEqual(r.change?.problems, ['exceeds_payment']);
    assert.equal(r.change?.amount, OWED + 30);
    assert.equal(r.change?.surplusMsat, (OWED + 30 - PAID) * 1000);
    assert.equal(await worth(r.changeToken!), OWED + 30, 'real ecash at the mint');
    // What the ledger must do with it: the provider kept nothing (charge 0); the rest is a gift.
    const charged = Math.max(0, PAID - (OWED + 30));
    assert.equal(charged, 0);
  });

  test('change at a mint other than the paid one is flagged other_mint, with that mint named', async (t) => {
    const p = await provider(t, { changeMint: rogue.url });
    await p.fund(await pay(100, rogue));
    const r = await answer(p);
    assert.deepEqual(r.change?.problems, ['other_mint']);
    assert.equal(r.change?.mint, rogue.url);
    assert.equal(r.change?.amount, OWED);
    assert.equal(await worth(r.changeToken!, rogue), OWED);
  });

  test('an honest change token has no problem, and garbage in X-Cashu is unreadable', async (t) => {
    const p = await provider(t, {});
    const ok = await answer(p);
    assert.deepEqual(ok.change, { mint: mint.url, unit: 'sat', amount: OWED, claimedMsat: OWED * 1000, surplusMsat: 0, problems: [] });
    p.knobs.invalidChange = 'garbage';
    assert.deepEqual((await answer(p)).change?.problems, ['unreadable']);
  });
});

describe('answers that never end or never fit', () => {
  test('a never-ending stream is stopped by the total timeout after what it delivered; its change and usage are kept', async (t) => {
    const p = await provider(t, { endlessMs: 5 });
    const s = await stream(p, { timeouts: { totalMs: 1_500, idleMs: 1_000 } });
    const got: StreamItem[] = [];
    const err = await failure(
      (async () => {
        for await (const e of s.events) got.push(e);
      })(),
      ProviderTimeoutError,
    );
    assert.equal(err.timeout, 'total');
    assert.ok(err.eventsDelivered > 3 && err.eventsDelivered === got.length);
    assert.equal(s.events.sawDone, false);
    assert.deepEqual(err.reported?.usage, { promptTokens: PROMPT, completionTokens: COMPLETION });
    assert.equal(await worth(err.changeToken!), OWED);
  });

  test('a live (balance-mode) stream that never ends is stopped the same way; the node charges the balance nothing for it', async (t) => {
    const p = await provider(t, { endlessMs: 5 });
    const created = await fetch(`${p.url}/v1/balance/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ initial_balance_token: await pay(PAID) }) });
    const { api_key: apiKey, balance } = (await created.json()) as { api_key: string; balance: number };
    const r = await call(p, '', { payment: { kind: 'bearer', apiKey }, body: { ...BODY, stream: true }, timeouts: { totalMs: 1_500, idleMs: 1_000 } });
    assert.ok(r.kind === 'ok' && r.stream);
    let n = 0;
    const err = await failure(
      (async () => {
        for await (const _ of r.events) n += 1;
      })(),
      ProviderTimeoutError,
    );
    assert.equal(err.timeout, 'total');
    assert.ok(n > 3 && err.eventsDelivered === n && err.reported?.usage === null, 'chunks, never a usage');
    const info = async () => (await (await fetch(`${p.url}/v1/balance/info`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as { balance: number; reserved: number };
    await waitUntil(async () => (await info()).reserved === 0);
    assert.equal((await info()).balance, balance);
  });

  test('a JSON answer that never closes times out in total, never idle, with the change from its headers', async (t) => {
    const p = await provider(t, { endlessMs: 5 });
    const err = await failure(call(p, await pay(PAID), { timeouts: { totalMs: 1_500, idleMs: 1_000 } }), ProviderTimeoutError);
    assert.equal(err.timeout, 'total');
    assert.equal(err.reached, 'yes');
    assert.equal(await worth(err.changeToken!), OWED);
  });

  test('a 100 MB answer is cut at the answer limit (16 MB), with the change from its headers', async (t) => {
    const p = await provider(t, { hugeBodyBytes: 100 * 1024 * 1024 });
    const err = await failure(call(p, await pay(PAID)), ProviderBodyTooLargeError);
    assert.equal(err.limitBytes, 16 * 1024 * 1024);
    assert.equal(await worth(err.changeToken!), OWED);
  });

  test('a 100 MB stream is cut at the stream limit (64 MB) after the events that fit, with its change', async (t) => {
    const p = await provider(t, { hugeBodyBytes: 100 * 1024 * 1024 });
    const s = await stream(p);
    let n = 0;
    const err = await failure(
      (async () => {
        for await (const _ of s.events) n += 1;
      })(),
      ProviderBodyTooLargeError,
    );
    assert.equal(err.limitBytes, DEFAULT_MAX_STREAM_BYTES);
    assert.ok(n > 500 && err.eventsDelivered === n);
    assert.equal(await worth(err.changeToken!), OWED);
  });
});

describe('answers of the wrong shape', () => {
  test('valid JSON without choices, choices as an object, or an array is malformed, the change kept', async (t) => {
    const p = await provider(t, { wrongShape: 'no-choices' });
    for (const shape of ['no-choices', 'choices-object', 'array'] as const) {
      p.knobs.wrongShape = shape;
      const err = await failure(call(p, await pay(PAID)), ProviderMalformedError);
      assert.equal(err.reached, 'yes', shape);
      assert.equal(await worth(err.changeToken!), OWED, shape);
    }
  });

  test('usage as an array leaves the answer standing, without usage: the refusal is kept as evidence', async (t) => {
    const p = await provider(t, { wrongShape: 'usage-array' });
    const r = await answer(p);
    assert.equal(r.reported.usage, null);
    assert.deepEqual(r.reported.rejected.map((x) => [x.field, x.problem]), [['usage', 'not_an_object']]);
    assert.equal(r.reported.costMsat, COST_MSAT, 'the cost header still says what it charged');
    const rec = await settle(p, r, await worth(r.changeToken!));
    assert.deepEqual(rec.flags, ['usage_missing']);
  });

  test('a stream whose every chunk is of the wrong shape is malformed at its end, before anything reached our client', async (t) => {
    const p = await provider(t, { wrongShape: 'array' });
    const s = await stream(p);
    const err = await failure(drain(s.events), ProviderMalformedError);
    assert.equal(err.eventsDelivered, 0, 'nothing handed over: failover is still possible');
    assert.ok(s.events.malformed > 2);
    assert.equal(await worth(err.changeToken!), OWED);
    p.knobs.wrongShape = 'no-choices';
    await failure(drain((await stream(p)).events), ProviderMalformedError);
  });
});

describe('usage values no count can be', () => {
  test('bare NaN (as Python writes it) does not lose the answer: each value is refused with its reason', async (t) => {
    const p = await provider(t, { badUsage: 'nan' });
    const r = await answer(p);
    assert.equal((r.body.choices as { message: { content: string } }[])[0].message.content, `sim-a heard: ${QUESTION}`);
    assert.equal(r.reported.usage, null);
    assert.equal(r.reported.costMsat, null);
    assert.deepEqual(
      r.reported.rejected.map((x) => [x.field, x.problem]),
      [
        ['usage.prompt_tokens', 'not_a_number'],
        ['usage.completion_tokens', 'not_a_number'],
        ['usage.cost.total_msats', 'not_a_number'],
        ['X-Routstr-Cost-Msats', 'not_a_number'],
      ],
    );
    const rec = await settle(p, r, await worth(r.changeToken!));
    assert.equal(rec.chargedMsat, (PAID - OWED) * 1000, 'charged = sent - change, whatever it reported');
    assert.deepEqual(rec.flags, ['usage_missing']);
  });

  test('negative, huge, Infinity and string values are each refused; a stream with a NaN usage line still yields its evidence', async (t) => {
    const want = { negative: 'negative', huge: 'too_large', infinity: 'too_large', 'nan-string': 'string', string: 'string' } as const;
    const p = await provider(t, {});
    for (const [kind, problem] of Object.entries(want)) {
      p.knobs.badUsage = kind as keyof typeof want;
      const r = await answer(p);
      assert.equal(r.reported.usage, null, kind);
      assert.deepEqual(r.reported.rejected.slice(0, 2).map((x) => x.problem), [problem, problem], kind);
      assert.ok(r.reported.readings.every((x) => Number.isSafeInteger(x.totalMsat) && x.totalMsat >= 0), kind);
    }
    p.knobs.badUsage = 'nan';
    const s = await stream(p);
    assert.ok((await drain(s.events)).length > 2);
    assert.equal(s.events.skipped, 0, 'the usage line was read, not skipped');
    assert.deepEqual(s.events.reported().rejected.map((x) => x.problem).slice(0, 2), ['not_a_number', 'not_a_number']);
  });
});
