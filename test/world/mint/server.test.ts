// The test mint's HTTP knobs that mirror real mints under load: a rate limit (nutshell's 429
// body; Retry-After when a proxy in front of the mint adds one) and faults aimed at one route.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { getEncodedToken, hashToCurve, RateLimitError, sumProofs, Wallet } from '@cashu/cashu-ts';
import { LightningNetwork } from '../lightning.ts';
import { startMint } from '../mint.ts';

async function funded(t: TestContext, amount: number) {
  const ln = new LightningNetwork();
  let now = 1_000_000;
  const mint = await startMint({ lightning: ln, clock: () => now });
  t.after(() => mint.stop());
  const wallet = new Wallet(mint.url, { unit: 'sat' });
  await wallet.loadMint();
  const quote = await wallet.createMintQuoteBolt11(amount);
  ln.pay(quote.request);
  const proofs = await wallet.mintProofsBolt11(amount, quote.quote);
  return { mint, wallet, proofs, advance: (ms: number) => (now += ms) };
}

test('a rate-limited mint answers 429 with Retry-After once its window is full, which cashu-ts reads as RateLimitError', async (t) => {
  const { mint, wallet, proofs, advance } = await funded(t, 16);
  mint.knobs.rateLimit = { retryAfterSec: 30, maxRequests: 2, windowMs: 60_000 };
  assert.equal((await fetch(`${mint.url}/v1/keysets`)).status, 200);
  assert.equal((await fetch(`${mint.url}/v1/keysets`)).status, 200);
  const limited = await fetch(`${mint.url}/v1/keysets`);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get('retry-after'), '30');
  assert.deepEqual(await limited.json(), { detail: 'Rate limit exceeded.' });
  const token = getEncodedToken({ mint: mint.url, unit: 'sat', proofs });
  const err = await wallet.receive(token).then(() => assert.fail('expected a 429'), (e: unknown) => e);
  assert.ok(err instanceof RateLimitError && err.retryAfterMs === 30_000);
  assert.equal(mint.stats().spent, 0, 'the refused swap was not processed');
  advance(60_000);
  assert.equal(sumProofs(await wallet.receive(token)).toNumber(), 16, 'the window reopens');
  mint.knobs.rateLimit = { retryAfterSec: null };
  assert.equal((await fetch(`${mint.url}/v1/keysets`)).headers.get('retry-after'), null, "nutshell's own limiter sends no Retry-After");
});

test('onlyRoute aims failNext and loseResponseNext at one route, leaving the others alone', async (t) => {
  const { mint, wallet, proofs } = await funded(t, 16);
  Object.assign(mint.knobs, { onlyRoute: 'POST /v1/swap', loseResponseNext: 1 });
  assert.equal((await fetch(`${mint.url}/v1/keysets`)).status, 200, 'another route is untouched');
  await assert.rejects(wallet.receive(getEncodedToken({ mint: mint.url, unit: 'sat', proofs })), { name: 'NetworkError' });
  assert.equal(mint.knobs.loseResponseNext, 0);
  assert.equal(mint.stats().spent, 16, 'the swap was done; only its answer was lost');
});

test('a checkstate or restore of more than 1000 items is refused, as Nutshell refuses past mint_max_request_length', async (t) => {
  const { mint, wallet } = await funded(t, 1);
  const post = (path: string, body: unknown) => fetch(mint.url + path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const points = Array.from({ length: 1001 }, (_, i) => hashToCurve(new TextEncoder().encode(`item ${i}`)).toHex(true));
  const outputs = points.map((B_) => ({ amount: 1, id: wallet.keysetId, B_ }));

  const atLimit = await post('/v1/checkstate', { Ys: points.slice(0, 1000) });
  assert.equal(atLimit.status, 200);
  assert.equal(((await atLimit.json()) as { states: unknown[] }).states.length, 1000);
  assert.equal((await post('/v1/restore', { outputs: outputs.slice(0, 1000) })).status, 200);

  for (const [path, body] of [['/v1/checkstate', { Ys: points }], ['/v1/restore', { outputs }]] as const) {
    const res = await post(path, body);
    assert.equal(res.status, 400, path);
    const json = (await res.json()) as { detail: unknown; code: unknown };
    assert.equal(typeof json.detail, 'string');
    assert.equal(typeof json.code, 'number');
  }
});
