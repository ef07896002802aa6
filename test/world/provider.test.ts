import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { WebSocket } from 'ws';
import { getEncodedToken, MintOperationError, sumProofs, Wallet, type Proof } from '@cashu/cashu-ts';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import type { Event } from 'nostr-tools/pure';
import { LightningNetwork } from './lightning.ts';
import { startMint, type TestMint } from './mint.ts';
import { startRelay, type TestRelay } from './relay.ts';
import { startProvider, type ModelSpec, type ProviderOptions, type TestProvider } from './provider.ts';

useWebSocketImplementation(WebSocket);

// 0.01 sat = 10 msat per prompt token, 0.02 sat = 20 msat per completion token;
// max_cost = 7168 x 0.01 + 1024 x 0.02 = 92.16 sats.
const CHAT: ModelSpec = { id: 'sim/chat', aliasIds: ['chat-alias'], promptSatsPerToken: 0.01, completionSatsPerToken: 0.02 };
// No completion price: routstr bills the (discounted) max cost outright.
const EMBED: ModelSpec = { id: 'sim/embed', promptSatsPerToken: 0.005, completionSatsPerToken: 0, maxCostSats: 2, kind: 'embedding' };
const QUESTION = 'What is the capital of France? Answer briefly.';

let ln: LightningNetwork;
let mint: TestMint;
let relay: TestRelay;
let sats: Wallet;
let msats: Wallet;
let satPool: Proof[] = [];
let msatPool: Proof[] = [];

const total = (proofs: Proof[]) => sumProofs(proofs).toNumber();

async function fund(wallet: Wallet, amount: number): Promise<Proof[]> {
  const quote = await wallet.createMintQuoteBolt11(amount);
  ln.pay(quote.request);
  return wallet.mintProofsBolt11(amount, quote.quote);
}

before(async () => {
  ln = new LightningNetwork();
  mint = await startMint({ lightning: ln, units: ['sat', 'msat'] });
  relay = await startRelay();
  sats = new Wallet(mint.url, { unit: 'sat' });
  msats = new Wallet(mint.url, { unit: 'msat' });
  await Promise.all([sats.loadMint(), msats.loadMint()]);
  satPool = await fund(sats, 4000);
  msatPool = await fund(msats, 200_000);
});

after(async () => {
  await relay?.stop();
  await mint?.stop();
});

/** A sat token of exactly `amount` from the test client's wallet. */
async function pay(amount: number): Promise<string> {
  const { keep, send } = await sats.send(amount, satPool);
  satPool = keep;
  return getEncodedToken({ mint: mint.url, unit: 'sat', proofs: send });
}

async function payMsat(amount: number): Promise<string> {
  const { keep, send } = await msats.send(amount, msatPool);
  msatPool = keep;
  return getEncodedToken({ mint: mint.url, unit: 'msat', proofs: send });
}

/** Receive a token at the mint (proving it is spendable) and return its value. */
async function redeem(token: string, wallet = sats): Promise<number> {
  const proofs = await wallet.receive(token);
  if (wallet === sats) satPool.push(...proofs);
  else msatPool.push(...proofs);
  return total(proofs);
}

async function provider(t: TestContext, opts: Partial<ProviderOptions> = {}): Promise<TestProvider> {
  const p = await startProvider({ name: 'sim-a', relays: [relay.url], mints: [mint.url], models: [CHAT, EMBED], ...opts });
  t.after(() => p.stop());
  return p;
}

function chat(p: TestProvider, token: string | undefined, body: Record<string, unknown> = {}, init: RequestInit = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers['X-Cashu'] = token;
  return fetch(`${p.url}/v1/chat/completions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model: CHAT.id, messages: [{ role: 'user', content: QUESTION }], max_tokens: 100, ...body }),
    ...init,
  });
}

/** The kind-38421 events of a pubkey currently on the test relay. */
async function announcements(t: TestContext, pubkey: string): Promise<Event[]> {
  const client = await Relay.connect(relay.url);
  t.after(() => client.close());
  return await new Promise<Event[]>((resolve) => {
    const found: Event[] = [];
    const sub = client.subscribe([{ kinds: [38421], authors: [pubkey] }], {
      onevent: (e) => found.push(e),
      oneose: () => {
        sub.close();
        resolve(found);
      },
    });
  });
}

const refund = (p: TestProvider, token: string) => fetch(`${p.url}/v1/balance/refund`, { method: 'POST', headers: { 'X-Cashu': token } });

/** What the fake upstream reports for QUESTION, and what it must cost (10 / 20 msat per token). */
function expectedFor(provider: string) {
  const promptTokens = Math.ceil(QUESTION.length / 4);
  const completionTokens = Math.ceil(`${provider} heard: ${QUESTION}`.length / 4);
  return { promptTokens, completionTokens, costMsat: promptTokens * 10 + completionTokens * 20 };
}

interface SseResult {
  lines: string[];
  data: unknown[];
  raw: string;
}

function parseSse(raw: string): SseResult {
  const lines = raw.split('\n');
  const data = lines
    .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
    .map((l) => JSON.parse(l.slice(6)) as unknown);
  return { lines, data, raw };
}

describe('paying a simulated provider with X-Cashu', () => {
  test('a paid chat request keeps tokens x price rounded up to the sat and returns the rest as change', async (t) => {
    const p = await provider(t);
    const token = await pay(10);
    const res = await chat(p, token);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { usage: Record<string, unknown>; choices: { message: { content: string } }[]; provider: string };
    const want = expectedFor('sim-a');
    assert.equal(body.usage.prompt_tokens, want.promptTokens);
    assert.equal(body.usage.completion_tokens, want.completionTokens);
    assert.equal(body.choices[0].message.content, `sim-a heard: ${QUESTION}`);
    assert.equal((body.usage.cost as { total_msats: number }).total_msats, want.costMsat);
    assert.equal(body.usage.cost_sats, Math.floor(want.costMsat / 1000));
    assert.equal(res.headers.get('x-routstr-cost-msats'), String(want.costMsat));
    assert.match(res.headers.get('x-routstr-request-id') ?? '', /^[0-9a-f-]{36}$/);
    const change = res.headers.get('x-cashu');
    assert.ok(change, 'change comes back in X-Cashu');
    assert.equal(await redeem(change), 10 - Math.ceil(want.costMsat / 1000));
    assert.equal(p.stats().earnedMsat, Math.ceil(want.costMsat / 1000) * 1000);
    assert.ok(mint.isSpent(sats.decodeToken(token).proofs[0].secret), 'the whole token was swapped at the mint');
  });

  test('an msat token gets msat-exact change', async (t) => {
    const p = await provider(t);
    const token = await payMsat(5000);
    const res = await chat(p, token);
    assert.equal(res.status, 200);
    const want = expectedFor('sim-a');
    assert.equal(await redeem(res.headers.get('x-cashu')!, msats), 5000 - want.costMsat);
  });

  test('an underpaid request gets 402 with amount_required_msat and the token stays spendable', async (t) => {
    const p = await provider(t);
    const token = await pay(1);
    // 300 chars -> 100 estimated prompt tokens; 91238 - 69963 (prompt) - 275 (completion) msat.
    const res = await chat(p, token, { messages: [{ role: 'user', content: 'x'.repeat(300) }], max_tokens: 1000 });
    assert.equal(res.status, 402);
    assert.deepEqual(await res.json(), {
      detail: { reason: 'Insufficient balance', amount_required_msat: 21_000, model: CHAT.id, type: 'minimum_balance_required' },
      request_id: res.headers.get('x-routstr-request-id'),
    });
    assert.equal(await redeem(token), 1);
    assert.equal(p.stats().redeemed, 0);
  });

  test('a request without a token is refused with 401', async (t) => {
    const p = await provider(t);
    const res = await chat(p, undefined);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { detail: string }).detail, 'Unauthorized');
  });

  test('a token already used is refused as spent and not echoed back', async (t) => {
    const p = await provider(t);
    const token = await pay(5);
    assert.equal((await chat(p, token)).status, 200);
    const again = await chat(p, token);
    assert.equal(again.status, 400);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'cashu_token_already_spent');
    assert.equal(again.headers.get('x-cashu'), null);
  });

  test('a streamed request ends with a usage chunk carrying the cost, after the change header', async (t) => {
    const p = await provider(t);
    const token = await pay(10);
    const res = await chat(p, token, { stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const change = res.headers.get('x-cashu');
    assert.ok(change);
    const sse = parseSse(await res.text());
    assert.ok(sse.raw.endsWith('data: [DONE]\n'));
    assert.ok(!sse.raw.includes('\r'));
    const chunks = sse.data as { choices: { delta?: { content?: string } }[]; usage?: Record<string, unknown>; provider?: string }[];
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    const want = expectedFor('sim-a');
    assert.equal(last.usage?.completion_tokens, want.completionTokens);
    assert.equal((last.usage?.cost as { total_msats: number }).total_msats, want.costMsat);
    assert.equal(last.provider, 'sim-a');
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), `sim-a heard: ${QUESTION}`);
    assert.equal(await redeem(change), 10 - Math.ceil(want.costMsat / 1000));
  });

  test('embeddings are deterministic, and a model without a completion price bills its max cost', async (t) => {
    const p = await provider(t);
    const call = async () => {
      const res = await fetch(`${p.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'X-Cashu': await pay(3) },
        body: JSON.stringify({ model: EMBED.id, input: ['hello world', 'bye'] }),
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { data: { embedding: number[] }[]; usage: { prompt_tokens: number; cost: { total_msats: number } } };
      return { body, change: await redeem(res.headers.get('x-cashu')!) };
    };
    const a = await call();
    const b = await call();
    assert.deepEqual(a.body.data, b.body.data);
    assert.equal(a.body.data[0].embedding.length, 8);
    assert.notDeepEqual(a.body.data[0].embedding, a.body.data[1].embedding);
    assert.equal(a.body.usage.prompt_tokens, Math.ceil(14 / 4));
    assert.equal(a.body.usage.cost.total_msats, 1980); // 2 sats x 0.99
    assert.equal(a.change, 1);
  });

  test('/v1/info and /v1/models describe the provider and its sats prices', async (t) => {
    const p = await provider(t);
    const info = (await (await fetch(`${p.url}/v1/info`)).json()) as Record<string, unknown>;
    assert.equal(info.name, 'sim-a');
    assert.deepEqual(info.mints, [mint.url]);
    assert.equal(info.http_url, p.url);
    assert.match(String(info.npub), /^npub1/);
    const models = (await (await fetch(`${p.url}/v1/models`)).json()) as { data: Record<string, any>[] };
    const m = models.data.find((x) => x.id === CHAT.id)!;
    assert.equal(m.sats_pricing.prompt, 0.01);
    assert.equal(m.sats_pricing.completion, 0.02);
    assert.ok(Math.abs(m.sats_pricing.max_cost - 92.16) < 1e-9, 'max_cost is in sats');
    assert.ok(Math.abs(m.pricing.prompt - 0.01 * 0.001) < 1e-12, 'pricing is USD per token');
    assert.deepEqual(m.alias_ids, ['chat-alias']);
    for (const key of ['id', 'name', 'created', 'description', 'context_length', 'architecture', 'per_request_limits', 'top_provider', 'enabled', 'upstream_provider_id', 'canonical_slug', 'forwarded_model_id']) {
      assert.ok(key in m, `model has ${key}`);
    }
  });

  test('the kind-38421 announcement is on the relay with d, u, mint and version tags', async (t) => {
    const p = await provider(t, { providerId: 'sim-a-id' });
    const [event] = await announcements(t, p.pubkey);
    assert.deepEqual(event.tags, [['d', 'sim-a-id'], ['u', p.url], ['mint', mint.url], ['version', '0.4.5']]);
    assert.deepEqual(JSON.parse(event.content), { name: 'sim-a', about: 'A Routstr Node' });
    const newer = await p.publish({ createdAtSec: event.created_at + 10, mints: [] });
    assert.deepEqual(newer.accepted, [relay.url]);
    const replaced = await announcements(t, p.pubkey);
    assert.equal(replaced.length, 1);
    assert.deepEqual(replaced[0].tags, [['d', 'sim-a-id'], ['u', p.url], ['version', '0.4.5']]);
  });

  test('the refund endpoint hands out the change again for the original token', async (t) => {
    const p = await provider(t);
    const token = await pay(10);
    const res = await chat(p, token);
    const change = res.headers.get('x-cashu')!;
    await res.arrayBuffer();
    const want = 10 - Math.ceil(expectedFor('sim-a').costMsat / 1000);
    for (const path of ['/v1/balance/refund', '/v1/wallet/refund']) {
      const r = await fetch(`${p.url}${path}`, { method: 'POST', headers: { 'X-Cashu': token } });
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { token: change, sats: String(want) });
      assert.equal(r.headers.get('x-cashu'), change);
    }
    const unknown = await refund(p, await pay(1));
    assert.equal(unknown.status, 404);
  });

  test('concurrent paid requests each get their own valid change', async (t) => {
    const p = await provider(t);
    const tokens: string[] = [];
    for (const n of [7, 8, 9, 10, 11, 12]) tokens.push(await pay(n));
    const responses = await Promise.all(tokens.map((tok) => chat(p, tok)));
    const kept = Math.ceil(expectedFor('sim-a').costMsat / 1000);
    for (const [i, res] of responses.entries()) {
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.equal(await redeem(res.headers.get('x-cashu')!), 7 + i - kept);
    }
    assert.equal(p.stats().earnedMsat, 6 * kept * 1000);
  });

  test('a mint with input fees and a rotated keyset still yields correct change', async (t) => {
    const feeMint = await startMint({ lightning: ln, inputFeePpk: 400, name: 'feemint' });
    t.after(() => feeMint.stop());
    const wallet = new Wallet(feeMint.url, { unit: 'sat' });
    await wallet.loadMint();
    let proofs = await fund(wallet, 100);
    const errors: unknown[] = [];
    const p = await provider(t, { mints: [feeMint.url], onError: (e) => errors.push(e) });
    const kept = Math.ceil(expectedFor('sim-a').costMsat / 1000);
    for (const round of [1, 2]) {
      const { keep, send } = await wallet.send(16, proofs);
      proofs = keep;
      const token = getEncodedToken({ mint: feeMint.url, unit: 'sat', proofs: send });
      const inputFee = wallet.getFeesForProofs(send).toNumber();
      const res = await chat(p, token);
      assert.equal(res.status, 200, `round ${round}`);
      const change = wallet.decodeToken(res.headers.get('x-cashu')!);
      assert.equal(sumProofs(change.proofs).toNumber(), 16 - inputFee - kept, 'the mint fee comes off the token, as routstr credits it');
      assert.deepEqual(await wallet.checkProofsStates(change.proofs).then((s) => s.map((x) => x.state)), change.proofs.map(() => 'UNSPENT'));
      if (round === 1) {
        feeMint.rotateKeyset('sat', 400);
        await wallet.loadMint(true);
      }
    }
    assert.deepEqual(errors, []);
  });

  test('a mint that is down makes redemption fail with 503 and the token echoed back', async (t) => {
    const p = await provider(t);
    const token = await pay(5);
    await mint.setDown(true);
    t.after(() => mint.setDown(false));
    const res = await chat(p, token);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'cashu_source_mint_unreachable');
    assert.equal(res.headers.get('x-cashu'), token);
    await mint.setDown(false);
    assert.equal(await redeem(token), 5);
  });
});

describe('provider knobs', () => {
  test('latencyMs delays every answer', async (t) => {
    const p = await provider(t, { knobs: { latencyMs: 150 } });
    const started = performance.now();
    assert.equal((await fetch(`${p.url}/v1/info`)).status, 200);
    assert.ok(performance.now() - started >= 140);
  });

  test('ttfbMs delays the first byte of a paid stream', async (t) => {
    const p = await provider(t, { knobs: { ttfbMs: 150 } });
    const token = await pay(10);
    const started = performance.now();
    const res = await chat(p, token, { stream: true });
    assert.ok(performance.now() - started >= 140);
    await res.text();
  });

  test('failureRate makes the upstream fail with a full refund_token, also in X-Cashu and the refund endpoint', async (t) => {
    const p = await provider(t, { random: () => 0.4, knobs: { failureRate: 0.5, failureStatus: 503 } });
    const token = await pay(8);
    const res = await chat(p, token);
    assert.equal(res.status, 503);
    const body = (await res.json()) as { error: { type: string; code: number; refund_token: string; message: string } };
    assert.equal(body.error.type, 'upstream_error');
    assert.equal(body.error.code, 503);
    assert.equal(body.error.message, 'Error forwarding request to upstream');
    assert.equal(res.headers.get('x-cashu'), body.error.refund_token);
    const again = (await (await refund(p, token)).json()) as { token: string; sats: string };
    assert.deepEqual(again, { token: body.error.refund_token, sats: '8' });
    assert.equal(await redeem(body.error.refund_token), 8);
    p.knobs.failureRate = 0.3; // 0.4 is no longer under the rate
    assert.equal((await chat(p, await pay(8))).status, 200);
  });

  test('timeout takes the token and never answers; the refund is pending (425) meanwhile', async (t) => {
    const p = await provider(t, { knobs: { timeout: true } });
    const token = await pay(10);
    await assert.rejects(chat(p, token, {}, { signal: AbortSignal.timeout(300) }), /abort|timeout/i);
    assert.equal(p.stats().redeemed, 1);
    const r = await refund(p, token);
    assert.equal(r.status, 425);
    assert.equal(((await r.json()) as { detail: string }).detail, 'Refund is pending; retry shortly.');
  });

  test('rateLimit: once the upstream window is full the token is taken and refunded with a 429, no Retry-After', async (t) => {
    let now = 1_000_000;
    const p = await provider(t, { clock: () => now, knobs: { rateLimit: { retryAfterSec: 7, maxRequests: 1, windowMs: 10_000 } } });
    assert.equal((await chat(p, await pay(5))).status, 200);
    const token = await pay(5);
    const limited = await chat(p, token);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), null, "the node builds its own answer: the upstream's Retry-After is lost");
    const body = (await limited.json()) as { error: { type: string; code: number; refund_token: string } };
    assert.equal(body.error.type, 'upstream_error');
    assert.equal(body.error.code, 429);
    assert.ok(mint.isSpent(sats.decodeToken(token).proofs[0].secret), 'the token was redeemed before the upstream said no');
    assert.equal(await redeem(body.error.refund_token), 5);
    now += 10_000;
    assert.equal((await chat(p, await pay(5))).status, 200, 'the window reopens');
  });

  test('overchargeFactor charges more than tokens x price and reports the inflated or the honest cost', async (t) => {
    const p = await provider(t, { knobs: { overchargeFactor: 3 } });
    const honest = expectedFor('sim-a').costMsat;
    const inflated = await chat(p, await pay(20));
    const body = (await inflated.json()) as { usage: { cost: { total_msats: number } } };
    assert.equal(body.usage.cost.total_msats, honest * 3);
    assert.equal(await redeem(inflated.headers.get('x-cashu')!), 20 - Math.ceil((honest * 3) / 1000));
    p.knobs.overchargeReports = 'honest';
    const quiet = await chat(p, await pay(20));
    const quietBody = (await quiet.json()) as { usage: { cost: { total_msats: number } } };
    assert.equal(quietBody.usage.cost.total_msats, honest);
    assert.equal(await redeem(quiet.headers.get('x-cashu')!), 20 - Math.ceil((honest * 3) / 1000));
  });

  test('noUsage refunds everything when not streaming, and keeps everything when streaming', async (t) => {
    const p = await provider(t, { knobs: { noUsage: true } });
    const plain = await chat(p, await pay(10));
    assert.equal(((await plain.json()) as { usage?: unknown }).usage, undefined);
    assert.equal(await redeem(plain.headers.get('x-cashu')!), 10);
    assert.equal(plain.headers.get('x-routstr-cost-msats'), '0', 'the node still writes its (zero) cost headers');
    const token = await pay(10);
    const streamed = await chat(p, token, { stream: true });
    const sse = parseSse(await streamed.text());
    assert.ok(sse.data.every((c) => !(c as { usage?: unknown }).usage));
    assert.equal(streamed.headers.get('x-cashu'), null);
    assert.equal((await refund(p, token)).status, 425, 'no refund was ever minted');
  });

  test("invalidChange 'garbage' sends a change header that is not a token", async (t) => {
    const p = await provider(t, { knobs: { invalidChange: 'garbage' } });
    const res = await chat(p, await pay(10));
    assert.equal(res.status, 200);
    const change = res.headers.get('x-cashu')!;
    assert.ok(change.startsWith('cashuB'));
    await assert.rejects(sats.receive(change));
  });

  test("invalidChange 'spent' sends a change token whose proofs are already spent", async (t) => {
    const p = await provider(t, { knobs: { invalidChange: 'spent' } });
    const res = await chat(p, await pay(10));
    const change = res.headers.get('x-cashu')!;
    assert.equal(sumProofs(sats.decodeToken(change).proofs).toNumber(), 10 - Math.ceil(expectedFor('sim-a').costMsat / 1000));
    const err = await sats.receive(change).then(
      () => assert.fail('change should be spent'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof MintOperationError && err.code === 11001);
  });

  test('midStreamDrop cuts the connection after some SSE chunks', async (t) => {
    const p = await provider(t, { knobs: { midStreamDrop: 2 } });
    const res = await chat(p, await pay(10), { stream: true });
    assert.equal(res.status, 200);
    assert.ok(res.headers.get('x-cashu'), 'headers, change included, arrived first');
    const reader = res.body!.getReader();
    let received = '';
    await assert.rejects(async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += new TextDecoder().decode(value);
      }
    });
    assert.ok(!received.includes('[DONE]'));
  });

  test('dead closes the port while the announcement stays on the relay', async (t) => {
    const p = await provider(t);
    p.knobs.dead = true;
    await p.setDead(true);
    assert.equal((await announcements(t, p.pubkey)).length, 1);
    await assert.rejects(fetch(`${p.url}/v1/info`), (err: Error) => /ECONNREFUSED/.test(String((err.cause as Error)?.message ?? err.cause)));
    await p.setDead(false);
    assert.equal((await fetch(`${p.url}/v1/info`)).status, 200);
  });

  test('use413 answers an underpaid request with 413 instead of 402', async (t) => {
    const p = await provider(t, { knobs: { use413: true } });
    const res = await chat(p, await pay(1), { max_tokens: 1000 });
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { detail: { type: string } }).detail.type, 'minimum_balance_required');
  });

  test('legacyCostField moves the cost to a top-level cost or to metadata.routstr.cost', async (t) => {
    const p = await provider(t, { knobs: { legacyCostField: 'top-level' } });
    const cost = expectedFor('sim-a').costMsat;
    const top = (await (await chat(p, await pay(10))).json()) as { cost: { total_msats: number }; usage: { cost?: unknown } };
    assert.equal(top.cost.total_msats, cost);
    assert.equal(top.usage.cost, undefined);
    p.knobs.legacyCostField = 'metadata';
    const res = await chat(p, await pay(10));
    assert.equal(res.headers.get('x-routstr-cost-msats'), null);
    const meta = (await res.json()) as { metadata: { routstr: { cost: { total_msats: number } } }; usage: { cost?: unknown } };
    assert.equal(meta.metadata.routstr.cost.total_msats, cost);
    assert.equal(meta.usage.cost, undefined);
  });

  test('setPrice changes the listed price and the charge at runtime', async (t) => {
    const p = await provider(t);
    p.setPrice(CHAT.id, { promptSatsPerToken: 0.1, completionSatsPerToken: 0.2 });
    const models = (await (await fetch(`${p.url}/v1/models`)).json()) as { data: { id: string; sats_pricing: { prompt: number } }[] };
    assert.equal(models.data.find((m) => m.id === CHAT.id)!.sats_pricing.prompt, 0.1);
    const res = await chat(p, await pay(30), { model: 'chat-alias' });
    const body = (await res.json()) as { usage: { cost: { total_msats: number } } };
    assert.equal(body.usage.cost.total_msats, expectedFor('sim-a').costMsat * 10);
  });

  test("foreignMint 'refuse': a token from a mint the node does not list is refused with 422 and echoed", async (t) => {
    const p = await provider(t, { knobs: { acceptedMints: ['http://127.0.0.1:1'], foreignMint: 'refuse' } });
    const token = await pay(5);
    const res = await chat(p, token);
    assert.equal(res.status, 422);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'cashu_foreign_mint_swap_failed');
    assert.equal(res.headers.get('x-cashu'), token);
    assert.equal(await redeem(token), 5);
  });

  test("foreignMint 'swap' with the node's own mint unreachable: 503 cashu_mint_unreachable, token echoed and unspent", async (t) => {
    const p = await provider(t, { knobs: { acceptedMints: ['http://127.0.0.1:1'] } });
    const token = await pay(5);
    const res = await chat(p, token);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'cashu_mint_unreachable');
    assert.equal(res.headers.get('x-cashu'), token);
    assert.equal(await redeem(token), 5);
  });

  test('internalError500 keeps the token and refunds nothing, for ever', async (t) => {
    const p = await provider(t, { knobs: { internalError500: true } });
    const token = await pay(10);
    const res = await chat(p, token);
    assert.equal(res.status, 500);
    assert.equal(((await res.json()) as { error: { type: string } }).error.type, 'internal_error');
    assert.equal(res.headers.get('x-cashu'), null);
    assert.ok(mint.isSpent(sats.decodeToken(token).proofs[0].secret));
    assert.equal((await refund(p, token)).status, 425);
    assert.equal(p.stats().earnedMsat, 10_000);
  });

  test('completionTokens forces the completion count, bounded by max_tokens', async (t) => {
    const p = await provider(t, { knobs: { completionTokens: 500 } });
    const body = (await (await chat(p, await pay(30), { max_tokens: 200 })).json()) as { usage: { completion_tokens: number }; choices: { finish_reason: string }[] };
    assert.equal(body.usage.completion_tokens, 200);
    assert.equal(body.choices[0].finish_reason, 'length');
  });
});
