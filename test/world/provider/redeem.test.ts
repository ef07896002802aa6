// Redemption as routstr-core v0.4.5 does it (wallet.py recieve_token, swap_to_trusted_mint,
// classify_redemption_error), with real tokens from a cashu-ts wallet at the world's mints.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getEncodedToken, getTokenMetadata, Wallet } from '@cashu/cashu-ts';
import { startMint } from '../mint.ts';
import { spellMint } from '../scenario.ts';
import { chat, expectedFor, market, Payer, provider, type ErrorBody } from './fixture.ts';
import { Purse } from './purse.ts';

const kept = Math.ceil(expectedFor('sim-a').costMsat / 1000);

describe('the mint URL is compared as an exact string', () => {
  test('a token spelled as the provider lists its mint is redeemed there, and the change carries the same spelling', async (t) => {
    const { mint, payer } = await market(t);
    const listed = `${mint.url}/`;
    const p = await provider(t, [listed]);
    const res = await chat(p, await payer.token(20, listed));
    assert.equal(res.status, 200);
    const change = res.headers.get('x-cashu')!;
    assert.equal(getTokenMetadata(change).mint, listed);
    assert.equal(await payer.redeem(change), 20 - kept);
    assert.equal(mint.requestCounts()['POST /v1/melt/bolt11'] ?? 0, 0, 'no Lightning detour');
  });

  test('the same mint spelled without the trailing slash is a foreign mint: melted over Lightning into the listed one', async (t) => {
    const { mint, payer } = await market(t);
    const listed = `${mint.url}/`;
    const p = await provider(t, [listed]);
    const res = await chat(p, await payer.token(20)); // the canonical spelling, not the listed one
    assert.equal(res.status, 200);
    const counts = mint.requestCounts();
    assert.equal(counts['POST /v1/melt/bolt11'], 1, 'the token was melted');
    assert.equal(counts['POST /v1/mint/bolt11'], 2, "and minted again at the node's spelling (the payer's funding was the first)");
    assert.equal(counts['POST /v1/mint/quote/bolt11'], 3, 'a fee-estimate quote and the real one');
    const change = res.headers.get('x-cashu')!;
    assert.equal(getTokenMetadata(change).mint, listed, "change comes from the node's primary mint, as it spells it");
    // An invoice of the mint's own is settled internally (no fee reserve), so only time is lost here.
    assert.equal(await payer.redeem(change), 20 - kept);
  });

  test("a token from another mint costs the payer the melt's fee reserve, and the unused reserve stays with the node", async (t) => {
    const a = await market(t);
    a.ln.knobs.routingFeeMsat = 1000;
    const b = await startMint({ lightning: a.ln, name: 'b' });
    t.after(() => b.stop());
    const p = await provider(t, [b.url]);
    const res = await chat(p, await a.payer.token(300));
    assert.equal(res.status, 200);
    // The fee reserve of mint a is max(2 sat, 1 %) = 3 sat on ~297 sat; 1 sat of it is really spent.
    const minted = 300 - 3;
    const change = res.headers.get('x-cashu')!;
    assert.equal(getTokenMetadata(change).mint, b.url);
    const atB = await Payer.start(a.ln, b, 1);
    assert.equal(await atB.redeem(change), minted - kept, 'the payer gets back what was minted, less the charge');
    const pool = p.stats().pool;
    assert.equal(pool.find((x) => x.mint === a.mint.url)?.amount, 2, 'the melt change (unused reserve) is kept by the node at the foreign mint');
  });

  test("foreignMint 'refuse': an upper-case spelling of the listed mint gets 422 and the token stays spendable", async (t) => {
    const { mint, payer } = await market(t);
    const p = await provider(t, [mint.url], { knobs: { foreignMint: 'refuse' } });
    const token = await payer.token(10, mint.url.replace('http://', 'HTTP://'));
    const res = await chat(p, token);
    assert.equal(res.status, 422);
    assert.equal(((await res.json()) as ErrorBody).error.code, 'cashu_foreign_mint_swap_failed');
    assert.equal(res.headers.get('x-cashu'), token);
    assert.equal(await payer.redeem(token), 10);
  });

  test("mintSpelling 'explicit-port': a token spelled with the port written out is redeemed; the mint as it serves itself is foreign there", async (t) => {
    const { mint, payer } = await market(t);
    const listed = spellMint(mint.url, 'explicit-port');
    assert.notEqual(listed, mint.url);
    assert.equal(new URL(listed).port, new URL(mint.url).port, 'the same mint to a URL parser');
    const p = await provider(t, [listed], { knobs: { foreignMint: 'refuse' } });
    const ok = await chat(p, await payer.token(20, listed));
    assert.equal(ok.status, 200);
    const change = ok.headers.get('x-cashu')!;
    assert.equal(getTokenMetadata(change).mint, listed, 'change carries the listed spelling');
    assert.equal(await payer.redeem(change), 20 - kept);
    const canonical = await payer.token(10);
    const refused = await chat(p, canonical);
    assert.equal(refused.status, 422);
    assert.equal(((await refused.json()) as ErrorBody).error.code, 'cashu_foreign_mint_swap_failed');
    assert.equal(await payer.redeem(canonical), 10, 'refused, not redeemed');
  });
});

describe('redemption failures, as classify_redemption_error answers them', () => {
  /** A payer holding proofs of two keysets (the mint rotated in between), and a token mixing them. */
  async function mixedToken(t: Parameters<typeof market>[0]) {
    const m = await market(t, 8);
    const old = await m.payer.proofs(8);
    m.mint.rotateKeyset();
    const fresh = new Wallet(m.mint.url, { unit: 'sat' });
    await fresh.loadMint();
    const quote = await fresh.createMintQuoteBolt11(8);
    m.ln.pay(quote.request);
    const newer = await fresh.mintProofsBolt11(8, quote.quote);
    return { ...m, token: getEncodedToken({ mint: m.mint.url, unit: 'sat', proofs: [...old, ...newer] }) };
  }

  test('a token mixing two keysets is refused with 400 before the mint is asked, and echoed', async (t) => {
    const { mint, token } = await mixedToken(t);
    const p = await provider(t, [mint.url]);
    const swaps = mint.requestCounts()['POST /v1/swap'] ?? 0;
    const res = await chat(p, token);
    assert.equal(res.status, 400);
    const body = (await res.json()) as ErrorBody;
    assert.deepEqual(body.error, { message: 'Failed to redeem Cashu token', type: 'cashu_error', code: 'cashu_token_redemption_failed' });
    assert.equal(res.headers.get('x-cashu'), token);
    assert.equal(mint.requestCounts()['POST /v1/swap'] ?? 0, swaps);
  });

  test('a node before v0.4.4 says why in the message: "Multiple keysets per token"', async (t) => {
    const { mint, token } = await mixedToken(t);
    const p = await provider(t, [mint.url], { version: '0.4.3' });
    const res = await chat(p, token);
    assert.equal(res.status, 400);
    const body = (await res.json()) as ErrorBody;
    assert.equal(body.error.message, 'CASHU token processing failed: Multiple keysets per token currently not supported');
    assert.equal(body.error.code, 400);
    assert.equal(res.headers.get('x-cashu'), token);
  });

  test('a swap whose answer is lost at the mint: 500 cashu_token_consumed, the token not echoed (it is spent)', async (t) => {
    const { mint, payer } = await market(t);
    const p = await provider(t, [mint.url]);
    const token = await payer.token(10);
    Object.assign(mint.knobs, { onlyRoute: 'POST /v1/swap', loseResponseNext: 1 });
    const res = await chat(p, token);
    assert.equal(res.status, 500);
    assert.deepEqual(((await res.json()) as ErrorBody).error, { message: 'Token was redeemed but could not be credited; do not retry', type: 'token_consumed', code: 'cashu_token_consumed' });
    assert.equal(res.headers.get('x-cashu'), null);
    assert.ok(payer.isSpent(token));
  });

  test('a mint answering 500 to the swap: 500 internal_error and no echo, though the token is still unspent', async (t) => {
    const { mint, payer } = await market(t);
    const p = await provider(t, [mint.url]);
    const token = await payer.token(10);
    Object.assign(mint.knobs, { onlyRoute: 'POST /v1/swap', failNext: 1 });
    const res = await chat(p, token);
    assert.equal(res.status, 500);
    assert.equal(((await res.json()) as ErrorBody).error.code, 'internal_error');
    assert.equal(res.headers.get('x-cashu'), null);
    assert.equal(await payer.redeem(token), 10, 'only NUT-07 could have told the payer');
  });

  test('a mint answering 429: 503 cashu_mint_rate_limited with the token echoed, and the mint left alone for the cooldown', async (t) => {
    const { mint, payer } = await market(t);
    let now = 5_000_000;
    const p = await provider(t, [mint.url], { clock: () => now });
    const token = await payer.token(10);
    mint.knobs.rateLimit = { retryAfterSec: 120 };
    const res = await chat(p, token);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as ErrorBody).error.code, 'cashu_mint_rate_limited');
    assert.equal(res.headers.get('x-cashu'), token);
    mint.knobs.rateLimit = null;
    const asked = JSON.stringify(mint.requestCounts());
    now += 119_000; // Retry-After (120 s) beats the 60 s base cooldown
    assert.equal((await chat(p, token)).status, 503);
    assert.equal(JSON.stringify(mint.requestCounts()), asked, 'no request reached the mint while cooling down');
    now += 2_000;
    assert.equal((await chat(p, token)).status, 200, 'after the cooldown the same token is redeemed');
  });
});

describe("the node's own ecash", () => {
  test('a swap refused at the connection (mint down) leaves the pool as it was: once the mint is back the node issues from it', async (t) => {
    // nutshell's split invalidates its inputs only once the mint answered: a swap that never
    // reached the mint leaves the proofs in the node's wallet.
    const { mint, payer } = await market(t);
    const purse = new Purse();
    await purse.redeem(await payer.token(5), mint.url, 'sat');
    await mint.setDown(true);
    await assert.rejects(purse.issue(mint.url, 'sat', 3)); // no exact set of 3: a swap, refused
    await mint.setDown(false);
    assert.equal(purse.balances()[0].amount, 5, 'the proofs are back in the pool');
    assert.equal(await payer.redeem(await purse.issue(mint.url, 'sat', 3)), 3);
  });
});
