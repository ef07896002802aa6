// callProvider against test/world providers (routstr-core v0.4.5 behaviour) and a real mint:
// every answer the world can give, classified, with the money in it proven at the mint.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { getEncodedToken, sumProofs, Wallet, type Proof } from '@cashu/cashu-ts';
import { LightningNetwork } from '../world/lightning.ts';
import { startMint, type TestMint } from '../world/mint.ts';
import { requiredMsat, startProvider, type ModelSpec, type ProviderKnobs, type TestProvider } from '../world/provider.ts';
import { callProvider, createProviderAgents, type CallOutcome, type CallRequest, type OkAnswer, type OkStream } from '../../protocol/provider-call.ts';
import {
  ProviderCallCanceledError,
  ProviderConnectionLostError,
  ProviderTimeoutError,
  ProviderUnreachableError,
} from '../../protocol/call-errors.ts';
import type { StreamItem } from '../../protocol/provider-stream.ts';

// 10 msat per prompt token, 20 msat per completion token (as in test/world/provider.test.ts).
const CHAT: ModelSpec = { id: 'sim/chat', aliasIds: ['chat-alias'], promptSatsPerToken: 0.01, completionSatsPerToken: 0.02 };
const EMBED: ModelSpec = { id: 'sim/embed', promptSatsPerToken: 0.005, completionSatsPerToken: 0, maxCostSats: 2, kind: 'embedding' };
const QUESTION = 'What is the capital of France? Answer briefly.';
const CHAT_BODY = { model: CHAT.id, messages: [{ role: 'user', content: QUESTION }], max_tokens: 100 };

let ln: LightningNetwork;
let mint: TestMint;
let otherMint: TestMint;
let wallet: Wallet;
let otherWallet: Wallet;
let pool: Proof[] = [];
let otherPool: Proof[] = [];
const agents = createProviderAgents();

async function fund(w: Wallet, amount: number): Promise<Proof[]> {
  const q = await w.createMintQuoteBolt11(amount);
  ln.pay(q.request);
  return w.mintProofsBolt11(amount, q.quote);
}

before(async () => {
  ln = new LightningNetwork();
  mint = await startMint({ lightning: ln });
  otherMint = await startMint({ lightning: ln, name: 'other' });
  wallet = new Wallet(mint.url, { unit: 'sat' });
  otherWallet = new Wallet(otherMint.url, { unit: 'sat' });
  await Promise.all([wallet.loadMint(), otherWallet.loadMint()]);
  pool = await fund(wallet, 3000);
  otherPool = await fund(otherWallet, 200);
});

after(async () => {
  agents.destroy();
  await otherMint?.stop();
  await mint?.stop();
});

/** A sat token worth exactly `amount` at the world mint. */
async function pay(amount: number, from: 'main' | 'other' = 'main'): Promise<string> {
  const w = from === 'main' ? wallet : otherWallet;
  const { keep, send } = await w.send(amount, from === 'main' ? pool : otherPool);
  if (from === 'main') pool = keep;
  else otherPool = keep;
  return getEncodedToken({ mint: w.mint.mintUrl, unit: 'sat', proofs: send });
}

/** Swap a token in at the mint: proves it is spendable and returns its value. */
async function worth(token: string): Promise<number> {
  const proofs = await wallet.receive(token);
  pool.push(...proofs);
  return sumProofs(proofs).toNumber();
}

async function provider(t: TestContext, knobs: Partial<ProviderKnobs> = {}): Promise<TestProvider> {
  const p = await startProvider({ name: 'sim-a', relays: [], noAnnounce: true, mints: [mint.url], models: [CHAT, EMBED], knobs });
  t.after(() => p.stop());
  return p;
}

function call(p: TestProvider, token: string, over: Partial<CallRequest> = {}): Promise<CallOutcome> {
  return callProvider({ providerUrl: p.url, endpoint: '/v1/chat/completions', body: CHAT_BODY, payment: { kind: 'xcashu', token }, ...over }, { agents });
}

/** What the world charges for QUESTION (ceil(chars/4) tokens each way, at 10/20 msat). */
function expectedCostMsat(name = 'sim-a'): { prompt: number; completion: number; msat: number } {
  const prompt = Math.ceil(QUESTION.length / 4);
  const completion = Math.ceil(`${name} heard: ${QUESTION}`.length / 4);
  return { prompt, completion, msat: prompt * 10 + completion * 20 };
}

async function drain(events: AsyncIterable<StreamItem>): Promise<StreamItem[]> {
  const out: StreamItem[] = [];
  for await (const e of events) out.push(e);
  return out;
}

describe('a paid call to a world provider', () => {
  test('a non-streaming answer comes with its change, request id, usage and the cost the node reported', async (t) => {
    const p = await provider(t);
    const want = expectedCostMsat();
    const r = await call(p, await pay(10));
    assert.equal(r.kind, 'ok');
    const ok = r as OkAnswer;
    assert.equal(ok.stream, false);
    assert.equal(ok.status, 200);
    assert.equal(ok.token, 'spent');
    assert.match(ok.requestId ?? '', /^[0-9a-f-]{36}$/);
    assert.deepEqual(ok.reported.usage, { promptTokens: want.prompt, completionTokens: want.completion });
    assert.equal(ok.reported.costMsat, want.msat);
    assert.deepEqual(ok.reported.readings.map((x) => x.source), ['usage.cost', 'header']);
    assert.equal((ok.body.choices as { message: { content: string } }[])[0].message.content, `sim-a heard: ${QUESTION}`);
    assert.ok(ok.timings.headersMs >= 0 && (ok.timings.doneMs ?? -1) >= ok.timings.headersMs);
    assert.equal(await worth(ok.changeToken!), 10 - Math.ceil(want.msat / 1000));
  });

  test('a streamed answer arrives event by event, ends with [DONE], and its usage chunk carries the cost', async (t) => {
    const p = await provider(t);
    const want = expectedCostMsat();
    let headersAt = -1;
    const r = await call(p, await pay(10), { body: { ...CHAT_BODY, stream: true }, onHeaders: (s) => (headersAt = s) });
    assert.equal(headersAt, 200);
    assert.ok(r.kind === 'ok' && r.stream);
    const s = r as OkStream;
    const items = await drain(s.events);
    assert.ok(items.length >= 3);
    assert.ok(items.every((i) => i.kind === 'data'));
    const text = items.map((i) => (i.json as { choices: { delta?: { content?: string } }[] }).choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, `sim-a heard: ${QUESTION}`);
    assert.equal(s.events.sawDone, true);
    assert.equal(s.events.delivered, items.length);
    assert.ok((s.events.firstEventMs ?? -1) >= s.timings.headersMs);
    assert.deepEqual(s.events.reported().usage, { promptTokens: want.prompt, completionTokens: want.completion });
    assert.equal(s.events.reported().costMsat, want.msat);
    assert.equal(await worth(s.changeToken!), 10 - Math.ceil(want.msat / 1000));
  });

  test('embeddings are paid and answered like chat', async (t) => {
    const p = await provider(t);
    const r = await call(p, await pay(3), { endpoint: '/v1/embeddings', body: { model: EMBED.id, input: ['one', 'two'] } });
    assert.ok(r.kind === 'ok' && !r.stream);
    assert.equal((r.body.data as unknown[]).length, 2);
    assert.equal(r.reported.usage?.completionTokens, 0);
    assert.equal(typeof r.reported.costMsat, 'number');
  });

  test('too small a token gets need_more with the exact amount, and the token is still good at the mint', async (t) => {
    const p = await provider(t);
    const token = await pay(1);
    const r = await call(p, token);
    assert.equal(r.kind, 'need_more');
    assert.ok(r.kind === 'need_more');
    assert.equal(r.status, 402);
    assert.equal(r.token, 'unspent');
    assert.equal(r.amountRequiredMsat, requiredMsat(CHAT, CHAT_BODY));
    assert.equal(await worth(token), 1);
  });

  test('an old node answering 413 for too small a token is read as need_more too', async (t) => {
    const p = await provider(t, { use413: true });
    const r = await call(p, await pay(1));
    assert.ok(r.kind === 'need_more');
    assert.equal(r.status, 413);
    assert.equal(r.amountRequiredMsat, requiredMsat(CHAT, CHAT_BODY));
  });

  test('an upstream failure after redemption comes back as upstream_error with a refund worth the whole token', async (t) => {
    const p = await provider(t, { failureRate: 1, failureStatus: 503 });
    const r = await call(p, await pay(12));
    assert.ok(r.kind === 'upstream_error');
    assert.equal(r.status, 503);
    assert.equal(r.upstreamStatus, 503);
    assert.equal(r.token, 'refunded');
    assert.equal(r.rateLimited, false);
    assert.equal(await worth(r.refundToken!), 12);
  });

  test('a 500 internal_error after redemption is money lost, with the evidence', async (t) => {
    const p = await provider(t, { internalError500: true });
    const r = await call(p, await pay(10));
    assert.ok(r.kind === 'internal_error');
    assert.equal(r.token, 'spent');
    assert.ok(r.evidence.includes('internal_error'));
    assert.equal(p.stats().redeemed, 1);
  });

  test('a token from a mint the provider does not take is echoed back unredeemed (422 foreign mint)', async (t) => {
    const p = await provider(t, { foreignMint: 'refuse' });
    const token = await pay(10, 'other');
    const r = await call(p, token);
    assert.ok(r.kind === 'rejected_echo');
    assert.equal(r.status, 422);
    assert.equal(r.echoMatches, true);
    assert.equal(r.errorCode, 'cashu_foreign_mint_swap_failed');
    const back = await otherWallet.receive(r.echoedToken);
    assert.equal(sumProofs(back).toNumber(), 10);
  });

  test('a token spent once cannot pay twice: rejected, and nothing echoed', async (t) => {
    const p = await provider(t);
    const token = await pay(10);
    assert.equal((await call(p, token)).kind, 'ok');
    const again = await call(p, token);
    assert.equal(again.kind, 'rejected');
    assert.equal(again.token, 'spent');
    assert.equal(again.errorCode, 'cashu_token_already_spent');
  });

  test('an unknown model is the caller\'s request_error, before any redemption', async (t) => {
    const p = await provider(t);
    const token = await pay(10);
    const r = await call(p, token, { body: { ...CHAT_BODY, model: 'nope' } });
    assert.equal(r.kind, 'request_error');
    assert.equal(r.token, 'unspent');
    assert.equal(p.stats().redeemed, 0);
    assert.equal(await worth(token), 10);
  });

  test('older cost fields (top-level cost, metadata.routstr.cost) are read when the node writes no usage.cost', async (t) => {
    for (const field of ['top-level', 'metadata'] as const) {
      const p = await provider(t, { legacyCostField: field });
      const r = await call(p, await pay(10));
      assert.ok(r.kind === 'ok' && !r.stream);
      assert.equal(r.reported.costSource, field === 'top-level' ? 'cost' : 'metadata.routstr.cost');
      assert.equal(r.reported.costMsat, expectedCostMsat().msat);
      await p.stop();
    }
  });

  test('an answer without usage says so: non-streaming refunds everything, streaming keeps the token', async (t) => {
    const p = await provider(t, { noUsage: true });
    const r = await call(p, await pay(10));
    assert.ok(r.kind === 'ok' && !r.stream);
    assert.equal(r.reported.usage, null);
    assert.equal(r.reported.costMsat, 0); // X-Routstr-Cost-Msats: 0
    assert.equal(await worth(r.changeToken!), 10);
    const s = await call(p, await pay(10), { body: { ...CHAT_BODY, stream: true } });
    assert.ok(s.kind === 'ok' && s.stream);
    await drain(s.events);
    assert.equal(s.events.reported().usage, null);
    assert.equal(s.events.reported().costMsat, null);
    assert.equal(s.changeToken, undefined);
  });

  test('a stream dropped mid-way fails after its first events, with the change the headers already gave', async (t) => {
    const p = await provider(t, { midStreamDrop: 2 });
    const r = await call(p, await pay(10), { body: { ...CHAT_BODY, stream: true } });
    assert.ok(r.kind === 'ok' && r.stream);
    const got: StreamItem[] = [];
    await assert.rejects(
      (async () => {
        for await (const e of r.events) got.push(e);
      })(),
      (err: unknown) => {
        assert.ok(err instanceof ProviderConnectionLostError);
        assert.equal(err.reached, 'yes');
        assert.equal(err.eventsDelivered, 2);
        assert.equal(err.changeToken, r.changeToken);
        assert.equal(err.status, 200);
        return true;
      },
    );
    assert.equal(got.length, 2);
    assert.ok(r.changeToken);
  });

  test('a provider that never answers times out before the first byte; the request may have reached it', async (t) => {
    const p = await provider(t, { timeout: true });
    await assert.rejects(call(p, await pay(10), { timeouts: { firstByteMs: 150 } }), (err: unknown) => {
      assert.ok(err instanceof ProviderTimeoutError);
      assert.equal(err.timeout, 'first_byte');
      assert.equal(err.reached, 'unknown');
      assert.equal(err.phase, 'send');
      return true;
    });
  });

  test('a dead provider is unreachable and the request never reached it', async (t) => {
    const p = await provider(t);
    await p.setDead(true);
    await assert.rejects(call(p, await pay(10)), (err: unknown) => {
      assert.ok(err instanceof ProviderUnreachableError);
      assert.equal(err.reached, 'no');
      assert.equal(err.code, 'unreachable');
      return true;
    });
  });

  test('our client canceling stops the call, saying the request may have reached the node', async (t) => {
    const p = await provider(t, { timeout: true });
    const ac = new AbortController();
    const pending = call(p, await pay(10), { signal: ac.signal, onHeaders: () => assert.fail('no headers expected') });
    setImmediate(() => setTimeout(() => ac.abort(), 20));
    await assert.rejects(pending, (err: unknown) => {
      assert.ok(err instanceof ProviderCallCanceledError);
      assert.equal(err.reached, 'unknown');
      return true;
    });
    const already = new AbortController();
    already.abort();
    await assert.rejects(call(p, await pay(1), { signal: already.signal }), (err: unknown) => err instanceof ProviderCallCanceledError && err.reached === 'no');
  });

  test('an upstream rate limit after redemption is refunded and marked rate limited', async (t) => {
    const p = await provider(t, { failureRate: 1, failureStatus: 429 });
    const r = await call(p, await pay(5));
    assert.ok(r.kind === 'upstream_error');
    assert.equal(r.rateLimited, true);
    assert.equal(await worth(r.refundToken!), 5);
  });

  test("the world's rate-limit knob (the node's upstream limit: 429 after redemption) is refunded, with no Retry-After", async (t) => {
    const p = await provider(t, { rateLimit: { retryAfterSec: 3 } });
    const r = await call(p, await pay(4));
    assert.ok(r.kind === 'upstream_error');
    assert.equal(r.rateLimited, true);
    assert.equal(r.retryAfterMs, undefined);
    assert.equal(await worth(r.refundToken!), 4);
  });
});
