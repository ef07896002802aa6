// The mint registry's bulk calls stay inside what a mint takes in one request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeMintUrl, OutputData, Wallet } from '@cashu/cashu-ts';
import { MINT_MAX_REQUEST_ITEMS, mintBatches, mintKey } from '../../wallet/mints.ts';
import { world } from './world.ts';

test('batches are at most what a mint takes in one request, in order, nothing left out', () => {
  const items = Array.from({ length: 2 * MINT_MAX_REQUEST_ITEMS + 1 }, (_, i) => i);
  const batches = mintBatches(items);
  assert.deepEqual(batches.map((b) => b.length), [MINT_MAX_REQUEST_ITEMS, MINT_MAX_REQUEST_ITEMS, 1]);
  assert.deepEqual(batches.flat(), items);
  assert.deepEqual(mintBatches([]), []);
});

test('restoring more outputs than a mint takes in one request brings back the signed ones, wherever they are in the list', async (t) => {
  const { ln, mint, ctx } = await world(t);
  const minter = new Wallet(mint.url);
  await minter.loadMint();
  const keyset = minter.keyChain.getKeyset();
  const quote = await minter.createMintQuoteBolt11(13);
  ln.pay(quote.request);
  const signed = OutputData.createRandomData(13, keyset);
  await minter.mint.mintBolt11({ quote: quote.quote, outputs: signed.map((o) => o.blindedMessage) });
  // Outputs never sent (a swap's earlier sets, say) come back with nothing; the signed ones sit past the first batch.
  const unsent = OutputData.createRandomData(MINT_MAX_REQUEST_ITEMS + 50, keyset, Array(MINT_MAX_REQUEST_ITEMS + 50).fill(1));
  const calls = () => mint.requestCounts()['POST /v1/restore'] ?? 0;
  const before = calls();
  const restored = await ctx.mints.restore(mint.url, 'sat', [...unsent, ...signed]);
  assert.equal(calls() - before, 2);
  assert.equal(restored?.reduce((a, p) => a + Number(p.amount), 0), 13);
  assert.deepEqual(restored?.map((p) => p.secret), signed.map((o) => new TextDecoder().decode(o.secret)));
});

test('mintKey gives cashu-ts\'s canonical form, remembered or not, and still refuses what is no URL', () => {
  const forms = ['http://127.0.0.1:3338', 'http://127.0.0.1:3338/', 'HTTPS://Mint.Example.com/path/', 'https://mint.example.com/path'];
  for (let round = 0; round < 2; round++) for (const url of forms) assert.equal(mintKey(url), normalizeMintUrl(url), `${url} (round ${round})`);
  // More distinct strings than it remembers: the answers stay right after it forgets.
  for (let i = 0; i < 600; i++) assert.equal(mintKey(`https://mint${i}.example.com/`), normalizeMintUrl(`https://mint${i}.example.com/`));
  for (const url of forms) assert.equal(mintKey(url), normalizeMintUrl(url));
  for (let round = 0; round < 2; round++) assert.throws(() => mintKey('not a url'));
});
