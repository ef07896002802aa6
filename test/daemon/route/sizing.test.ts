// The token a plan sizes is exactly what a routstr-core node checks: against a world provider
// (routstr-core v0.4.5 behaviour) probed by the real Market, paid with real ecash from the
// world's mint. One msat less is the node's 402 naming that very amount.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEncodedToken, Wallet, type Proof } from '@cashu/cashu-ts';
import { Market } from '../../../daemon/market.ts';
import { Breakers } from '../../../daemon/route/breaker.ts';
import { Router } from '../../../daemon/route/router.ts';
import { ProviderStats } from '../../../daemon/route/stats.ts';
import { PromptTokenizer } from '../../../protocol/tokens.ts';
import { openDatabase } from '../../../db/sqlite.ts';
import { LightningNetwork } from '../../world/lightning.ts';
import { startMint } from '../../world/mint.ts';
import { startProvider } from '../../world/provider.ts';

test('a planned token pays a world provider exactly: the reserved msat pass, one msat less is its 402', async (t) => {
  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln, units: ['sat', 'msat'] });
  t.after(() => mint.stop());
  const spelled = `${mint.url}/`; // the node lists its mint with a trailing slash
  const provider = await startProvider({
    name: 'Node',
    relays: [],
    noAnnounce: true,
    mints: [spelled],
    models: [{ id: 'chat-m', promptSatsPerToken: 0.0023, completionSatsPerToken: 0.0071, contextLength: 16_000, maxCompletionTokens: 2000 }],
  });
  t.after(() => provider.stop());
  const db = openDatabase(':memory:');
  t.after(() => db.close());
  const market = new Market({ db, config: { relays: [], providers: [provider.url] }, autoSchedule: false });
  await market.start();
  t.after(() => market.stop());
  await market.tick();
  const router = new Router({ market, breakers: new Breakers(), stats: new ProviderStats(), tokenizer: new PromptTokenizer() });

  const msats = new Wallet(mint.url, { unit: 'msat' });
  await msats.loadMint();
  const quote = await msats.createMintQuoteBolt11(400_000);
  ln.pay(quote.request);
  let pool: Proof[] = await msats.mintProofsBolt11(400_000, quote.quote);
  const pay = async (amountMsat: number, tokenMint: string) => {
    const { keep, send } = await msats.send(amountMsat, pool);
    pool = keep;
    return getEncodedToken({ mint: tokenMint, unit: 'msat', proofs: send });
  };
  const call = (token: string, body: Record<string, unknown>) =>
    fetch(`${provider.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'X-Cashu': token }, body: JSON.stringify(body) });

  for (const body of [
    { model: 'chat-m', messages: [{ role: 'user', content: 'Name three primes.' }], max_tokens: 60 },
    { model: 'chat-m', messages: [{ role: 'system', content: 'Be brief. '.repeat(50) }, { role: 'user', content: 'Why?' }] },
  ]) {
    const plan = router.plan({ model: 'chat-m', body, endpoint: '/v1/chat/completions', balances: new Map([[mint.url, 1_000]]) });
    const [a] = plan.attempts;
    router.release(plan);
    assert.equal(a.tokenMint, spelled, "the provider's own spelling");
    assert.equal(a.mint, mint.url);

    const short = await call(await pay(a.reserveMsat - 1, a.tokenMint), body);
    assert.equal(short.status, 402);
    const detail = ((await short.json()) as { detail: { amount_required_msat: number; type: string } }).detail;
    assert.equal(detail.type, 'minimum_balance_required');
    assert.equal(detail.amount_required_msat, a.reserveMsat);

    const exact = await call(await pay(a.reserveMsat, a.tokenMint), body);
    assert.equal(exact.status, 200, await exact.clone().text());
    await exact.arrayBuffer();
  }
});
