import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { MintOperationError, OutputData, Wallet, getEncodedToken, hasValidDleq, sumProofs, type Proof } from '@cashu/cashu-ts';
import { LightningNetwork } from './lightning.ts';
import { startMint, type MintOptions, type TestMint } from './mint.ts';

async function world(t: TestContext, opts: Partial<MintOptions> = {}, unit: 'sat' | 'msat' = 'sat') {
  const ln = opts.lightning ?? new LightningNetwork();
  const mint = await startMint({ lightning: ln, ...opts });
  t.after(() => mint.stop());
  const wallet = new Wallet(mint.url, { unit, requireSigDleq: true });
  await wallet.loadMint();
  return { ln, mint, wallet };
}

/** Mint `amount` through a paid Lightning invoice, as a user funding a wallet would. */
async function fund(ln: LightningNetwork, wallet: Wallet, amount: number): Promise<Proof[]> {
  const quote = await wallet.createMintQuoteBolt11(amount);
  ln.pay(quote.request);
  return wallet.mintProofsBolt11(amount, quote.quote);
}

const total = (proofs: Proof[]) => sumProofs(proofs).toNumber();

async function rejection(p: Promise<unknown>): Promise<MintOperationError> {
  const err = await p.then(
    () => assert.fail('expected the mint to refuse'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MintOperationError, `expected MintOperationError, got ${String(err)}`);
  return err;
}

describe('test mint through the cashu-ts Wallet', () => {
  test('paying the mint quote invoice lets the wallet mint proofs with verified DLEQ', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const quote = await wallet.createMintQuoteBolt11(100);
    assert.equal(quote.state, 'UNPAID');
    assert.equal(ln.lookup(ln.pay(quote.request).paymentHash)?.payee, mint.nodeId);
    assert.equal((await wallet.checkMintQuoteBolt11(quote.quote)).state, 'PAID');
    const proofs = await wallet.mintProofsBolt11(100, quote.quote);
    assert.equal(total(proofs), 100);
    const keyset = wallet.keyChain.getKeyset(wallet.keysetId);
    for (const p of proofs) assert.ok(p.dleq && hasValidDleq(p, keyset), 'every proof carries a valid DLEQ');
    assert.equal((await wallet.checkMintQuoteBolt11(quote.quote)).state, 'ISSUED');
    assert.equal(mint.stats().outstanding, 100);
  });

  test('the mint describes itself: NUT-04/05 bolt11 per unit, NUT-07, 08, 09 and 12 supported', async (t) => {
    const { mint, wallet } = await world(t, { units: ['sat', 'msat'], name: 'alpha' });
    const info = wallet.getMintInfo();
    assert.equal(info.name, 'alpha');
    assert.match(info.pubkey, /^0[23][0-9a-f]{64}$/);
    assert.equal(typeof info.version, 'string');
    for (const unit of ['sat', 'msat']) {
      assert.ok(info.supportsMintMeltMethod('mint', 'bolt11', unit));
      assert.ok(info.supportsMintMeltMethod('melt', 'bolt11', unit));
    }
    for (const nut of [7, 8, 9, 12] as const) assert.equal(info.isSupported(nut).supported, true);
    const keysets = mint.keysets();
    assert.deepEqual(keysets.map((k) => [k.unit, k.active]), [['sat', true], ['msat', true]], 'one keyset per unit');
    const msatWallet = new Wallet(mint.url, { unit: 'msat' });
    await msatWallet.loadMint();
    assert.equal(msatWallet.keysetId, mint.activeKeysetId('msat'));
    assert.equal(wallet.keysetId, mint.activeKeysetId('sat'));
  });

  test('send then receive swaps the token, and the same token received twice is refused as spent', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const proofs = await fund(ln, wallet, 64 + 32 + 4);
    const { send, keep } = await wallet.send(37, proofs);
    assert.equal(total(send), 37);
    assert.equal(total(keep), 63);
    const token = getEncodedToken({ mint: mint.url, proofs: send, unit: 'sat' });
    const received = await wallet.receive(token);
    assert.equal(total(received), 37);
    const err = await rejection(wallet.receive(token));
    assert.equal(err.code, 11001);
    assert.ok(send.every((p) => mint.isSpent(p.secret)));
    assert.ok(received.every((p) => !mint.isSpent(p.secret)));
  });
});

describe('proof states, melts and failures', () => {
  test('checkstate reports UNSPENT, then PENDING while a melt is in flight, then SPENT', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const proofs = await fund(ln, wallet, 16);
    assert.deepEqual((await wallet.checkProofsStates(proofs)).map((s) => s.state), ['UNSPENT']);
    const invoice = ln.node('shop').createInvoice(13_000);
    const quote = await wallet.createMeltQuoteBolt11(invoice.bolt11);
    const release = mint.holdMelts();
    const melting = wallet.meltProofsBolt11(quote, proofs);
    while (mint.meltQuoteState(quote.quote) !== 'PENDING') await new Promise((r) => setImmediate(r));
    assert.deepEqual((await wallet.checkProofsStates(proofs)).map((s) => s.state), ['PENDING']);
    assert.equal((await rejection(wallet.receive(getEncodedToken({ mint: mint.url, proofs, unit: 'sat' })))).code, 11002, 'pending proofs cannot be swapped meanwhile');
    release();
    await melting;
    assert.deepEqual((await wallet.checkProofsStates(proofs)).map((s) => s.state), ['SPENT']);
  });

  test('melting to another node pays the invoice and returns the unused fee reserve as change', async (t) => {
    const { ln, mint, wallet } = await world(t);
    ln.knobs.routingFeeMsat = 1000;
    const proofs = await fund(ln, wallet, 128);
    const invoice = ln.node('shop').createInvoice(50_000, 'coffee');
    const quote = await wallet.createMeltQuoteBolt11(invoice.bolt11);
    assert.equal(quote.amount.toNumber(), 50);
    assert.equal(quote.fee_reserve.toNumber(), 2); // max(2 sat, 1%)
    const { send, keep } = await wallet.send(52, proofs, { includeFees: true });
    const result = await wallet.meltProofsBolt11(quote, send);
    assert.equal(result.quote.state, 'PAID');
    assert.equal(result.quote.payment_preimage, invoice.preimage);
    assert.ok(ln.lookup(invoice.paymentHash)?.paidAtMs !== undefined, 'the shop was paid');
    assert.equal(total(result.change), 1, 'reserve 2 sat, routing fee 1 sat: 1 sat back');
    assert.equal(total(keep) + total(result.change), 128 - 50 - 1);
    const changeStates = await wallet.checkProofsStates(result.change);
    assert.ok(changeStates.every((s) => s.state === 'UNSPENT'));
    const s = mint.stats();
    assert.equal(s.meltedToLightning, 50);
    assert.equal(s.lightningFees, 1);
    assert.equal(s.outstanding, 128 - 51);
    const again = await rejection(wallet.meltProofsBolt11(quote, keep));
    assert.equal(again.code, 20006, 'a paid quote cannot be melted twice');
  });

  test('a failed Lightning payment leaves the proofs unspent and the quote payable', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const proofs = await fund(ln, wallet, 64);
    const invoice = ln.node('shop').createInvoice(20_000);
    const quote = await wallet.createMeltQuoteBolt11(invoice.bolt11);
    const { send } = await wallet.send(22, proofs);
    ln.knobs.failNextPayments = 1;
    const err = await rejection(wallet.meltProofsBolt11(quote, send));
    assert.equal(err.code, 20004);
    assert.ok((await wallet.checkProofsStates(send)).every((s) => s.state === 'UNSPENT'));
    assert.equal((await wallet.checkMeltQuoteBolt11(quote.quote)).state, 'UNPAID');
    assert.equal(mint.stats().spent, 64, 'only the swap inside send spent anything');
    const paid = await wallet.meltProofsBolt11(quote, send);
    assert.equal(paid.quote.state, 'PAID');
  });

  test('minting an unpaid quote, or a quote twice, is refused with the standard codes', async (t) => {
    const { ln, wallet } = await world(t);
    const quote = await wallet.createMintQuoteBolt11(10);
    assert.equal((await rejection(wallet.mintProofsBolt11(10, quote.quote))).code, 20001);
    ln.pay(quote.request);
    await wallet.mintProofsBolt11(10, quote.quote);
    assert.equal((await rejection(wallet.mintProofsBolt11(10, quote.quote))).code, 20002);
  });

  test('an expired, unpaid mint quote can no longer be paid or minted', async (t) => {
    let nowMs = Date.now();
    const clock = () => nowMs;
    const { ln, wallet } = await world(t, { lightning: new LightningNetwork(clock), clock, quoteExpirySec: 60 });
    const quote = await wallet.createMintQuoteBolt11(10);
    nowMs += 61_000;
    assert.throws(() => ln.pay(quote.request), { code: 'EXPIRED' });
    assert.equal((await rejection(wallet.mintProofsBolt11(10, quote.quote))).code, 20007);
  });
});

describe('keysets, fees and units', () => {
  test('after keyset rotation old proofs are still received, and new signatures come from the new keyset', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const oldProofs = await fund(ln, wallet, 40);
    const oldId = mint.activeKeysetId();
    const newId = mint.rotateKeyset();
    assert.notEqual(newId, oldId);
    assert.match(newId, /^00[0-9a-f]{14}$/, 'version 00 keyset id, as most mints publish');

    // A wallet still bound to the old keyset cannot get new signatures from it.
    const { send } = await wallet.send(8, oldProofs);
    const stale = await rejection(wallet.receive(getEncodedToken({ mint: mint.url, proofs: send, unit: 'sat' })));
    assert.equal(stale.code, 12002);

    const fresh = new Wallet(mint.url, { unit: 'sat', requireSigDleq: true });
    await fresh.loadMint();
    assert.equal(fresh.keysetId, newId);
    // GET /v1/keys lists active keysets only (NUT-01): the wallet fetches the old keys by id.
    await fresh.keyChain.ensureKeysetKeys(oldId);
    const received = await fresh.receive(getEncodedToken({ mint: mint.url, proofs: oldProofs, unit: 'sat' }));
    assert.equal(total(received), 40);
    assert.ok(received.every((p) => p.id === newId));
    assert.deepEqual(
      mint.keysets().map((k) => [k.id, k.active]),
      [[oldId, false], [newId, true]],
    );
  });

  test('a fee-charging mint takes input fees on swaps, and unbalanced swaps are refused', async (t) => {
    const { ln, mint, wallet } = await world(t, { inputFeePpk: 600 });
    assert.equal(wallet.keyChain.getKeyset().fee, 600);
    const proofs = await fund(ln, wallet, 100);
    const { send, keep } = await wallet.send(20, proofs, { includeFees: true });
    const sendFee = wallet.getFeesForProofs(send).toNumber();
    assert.ok(sendFee >= 1);
    assert.equal(total(send), 20 + sendFee, 'the sender adds what the receiver will pay');
    const received = await wallet.receive(getEncodedToken({ mint: mint.url, proofs: send, unit: 'sat' }));
    assert.equal(total(received), 20, 'the receiver nets the requested amount');
    const s = mint.stats();
    assert.ok(s.inputFees >= 2, 'fees were charged on both swaps');
    assert.equal(s.outstanding, 100 - s.inputFees);
    assert.equal(total(keep) + total(received), s.outstanding);

    // Outputs worth the full input sum ignore the fee: not balanced.
    const inputs = keep.map(({ id, amount, secret, C }) => ({ id, amount, secret, C }));
    const outputs = outputsFor(wallet, total(keep));
    assert.equal((await rejection(wallet.mint.swap({ inputs, outputs }))).code, 11005);
  });

  test('duplicate or already-signed outputs and duplicate inputs are refused', async (t) => {
    const { ln, wallet } = await world(t);
    const proofs = await fund(ln, wallet, 8);
    const inputs = proofs.map(({ id, amount, secret, C }) => ({ id, amount, secret, C }));
    const [one] = outputsFor(wallet, 4);
    assert.equal((await rejection(wallet.mint.swap({ inputs, outputs: [one, one] }))).code, 11008);
    assert.equal((await rejection(wallet.mint.swap({ inputs: [...inputs, ...inputs], outputs: outputsFor(wallet, 16) }))).code, 11007);
    const signed = outputsFor(wallet, 8);
    await wallet.mint.swap({ inputs, outputs: signed });
    const more = (await fund(ln, wallet, 8)).map(({ id, amount, secret, C }) => ({ id, amount, secret, C }));
    assert.equal((await rejection(wallet.mint.swap({ inputs: more, outputs: signed }))).code, 11003);
  });

  test('a forged proof is refused and spends nothing', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const [proof] = await fund(ln, wallet, 8);
    const forged = { ...proof, secret: 'f'.repeat(64), dleq: undefined };
    assert.equal((await rejection(wallet.mint.swap({ inputs: [forged], outputs: outputsFor(wallet, 8) }))).code, 10001);
    assert.equal(mint.stats().spent, 0);
  });

  test('an msat mint issues, swaps and melts in msat', async (t) => {
    const { ln, mint, wallet } = await world(t, { units: ['msat'] }, 'msat');
    const quote = await wallet.createMintQuoteBolt11(5000);
    assert.equal(ln.pay(quote.request).amountMsat, 5000, 'the invoice is for 5000 msat');
    const proofs = await wallet.mintProofsBolt11(5000, quote.quote);
    assert.equal(total(proofs), 5000);
    const { send, keep } = await wallet.send(1234, proofs);
    const received = await wallet.receive(getEncodedToken({ mint: mint.url, proofs: send, unit: 'msat' }));
    assert.equal(total(received), 1234);
    const invoice = ln.node('shop').createInvoice(1500);
    const melt = await wallet.createMeltQuoteBolt11(invoice.bolt11);
    assert.equal(melt.amount.toNumber(), 1500);
    assert.equal(melt.fee_reserve.toNumber(), 2000);
    const { send: toMelt } = await wallet.send(3500, [...keep, ...received]);
    const result = await wallet.meltProofsBolt11(melt, toMelt);
    assert.equal(result.quote.state, 'PAID');
    assert.equal(total(result.change), 2000, 'no routing fee: the whole reserve comes back');
    assert.equal(mint.stats('msat').outstanding, 5000 - 1500);
  });
});

/** Blinded outputs for the wallet's active keyset, built with cashu-ts' own output creator. */
function outputsFor(wallet: Wallet, amount: number) {
  return OutputData.createRandomData(amount, wallet.keyChain.getKeyset()).map((o) => o.blindedMessage);
}

describe('fault knobs and malformed requests', () => {
  test('a mint that is down refuses connections, and comes back on the same URL with its state', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const proofs = await fund(ln, wallet, 32);
    const { send } = await wallet.send(5, proofs);
    await mint.setDown(true);
    const err = await fetch(`${mint.url}/v1/info`).then(
      () => assert.fail('expected the connection to be refused'),
      (e: Error) => e,
    );
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    await assert.rejects(wallet.checkProofsStates(send), { name: 'NetworkError' });
    await mint.setDown(false);
    assert.deepEqual((await wallet.checkProofsStates([...send, ...proofs])).map((s) => s.state), [...send.map(() => 'UNSPENT'), ...proofs.map(() => 'SPENT')]);
    const received = await wallet.receive(getEncodedToken({ mint: mint.url, proofs: send, unit: 'sat' }));
    assert.equal(total(received), 5);
  });

  test('failNext answers HTTP 500 to exactly that many calls, without processing them', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const proofs = await fund(ln, wallet, 16);
    mint.knobs.failNext = 2;
    for (let i = 0; i < 2; i++) {
      await assert.rejects(wallet.receive(getEncodedToken({ mint: mint.url, proofs, unit: 'sat' })), (e: Error & { status?: number }) => e.name === 'HttpResponseError' && e.status === 500);
    }
    assert.equal(mint.stats().spent, 0);
    const received = await wallet.receive(getEncodedToken({ mint: mint.url, proofs, unit: 'sat' }));
    assert.equal(total(received), 16);
    assert.equal(mint.requestCounts()['POST /v1/swap'], 3);
  });

  test('a lost response leaves the swap done at the mint, visible through checkstate', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const proofs = await fund(ln, wallet, 16);
    mint.knobs.loseResponseNext = 1;
    await assert.rejects(wallet.receive(getEncodedToken({ mint: mint.url, proofs, unit: 'sat' })), { name: 'NetworkError' });
    assert.ok((await wallet.checkProofsStates(proofs)).every((s) => s.state === 'SPENT'));
  });

  test('latency is added to every answer', async (t) => {
    const { mint } = await world(t);
    mint.knobs.latencyMs = 150;
    const started = performance.now();
    const res = await fetch(`${mint.url}/v1/keysets`);
    assert.equal(res.status, 200);
    assert.ok(performance.now() - started >= 145, 'answered after the configured latency');
  });

  test('malformed bodies and unknown routes get 400/404 with a reason', async (t) => {
    const { mint } = await world(t);
    const post = (path: string, body: string) => fetch(mint.url + path, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    for (const [path, body] of [
      ['/v1/swap', '{}'],
      ['/v1/swap', 'not json'],
      ['/v1/swap', JSON.stringify({ inputs: [{ id: 'x', amount: -1, secret: 's', C: 'zz' }], outputs: [] })],
      ['/v1/mint/quote/bolt11', JSON.stringify({ amount: 1.5, unit: 'sat' })],
      ['/v1/melt/quote/bolt11', JSON.stringify({ request: 'lnbc1garbage', unit: 'sat' })],
      ['/v1/checkstate', JSON.stringify({ Ys: 'nope' })],
    ]) {
      const res = await post(path, body);
      assert.equal(res.status, 400, `${path} ${body}`);
      const json = (await res.json()) as { detail: unknown; code: unknown };
      assert.equal(typeof json.detail, 'string');
      assert.equal(typeof json.code, 'number');
    }
    assert.equal((await post('/v1/mint/quote/bolt11', JSON.stringify({ amount: 5, unit: 'usd' })).then((r) => r.json())).code, 11013);
    assert.equal((await fetch(`${mint.url}/v1/nothing`)).status, 404);
    assert.equal((await fetch(`${mint.url}/v1/keys/01ffff`)).status, 400);
  });
});

describe('NUT-09 restore', () => {
  const seed = new Uint8Array(64).fill(7);
  /** A wallet with deterministic secrets from `seed`; a second one with the same seed is the same user after a restart. */
  async function seededWallet(mint: TestMint): Promise<Wallet> {
    const wallet = new Wallet(mint.url, { bip39seed: seed, requireSigDleq: true });
    await wallet.loadMint();
    return wallet;
  }

  test('proofs minted while the answer was lost come back through restore, with DLEQ, and can be spent', async (t) => {
    const { ln, mint } = await world(t);
    const before = await seededWallet(mint);
    const quote = await before.createMintQuoteBolt11(100);
    ln.pay(quote.request);
    mint.knobs.loseResponseNext = 1;
    await assert.rejects(before.mintProofsBolt11(100, quote.quote), { name: 'NetworkError' });
    assert.equal(mint.mintQuoteState(quote.quote), 'ISSUED', 'the mint signed the outputs');
    assert.equal(mint.stats().outstanding, 100);

    const after = await seededWallet(mint);
    const { proofs, lastCounterWithSignature } = await after.restore(0, 10);
    await after.counters.advanceToAtLeast(after.keysetId, (lastCounterWithSignature ?? -1) + 1);
    assert.equal(total(proofs), 100);
    assert.deepEqual(proofs.map((p) => Number(p.amount)).sort((a, b) => a - b), [4, 32, 64]);
    assert.equal(lastCounterWithSignature, 2, 'counters 0..2 were signed, 3..9 were never seen and are left out');
    const keyset = after.keyChain.getKeyset(after.keysetId);
    for (const p of proofs) assert.ok(p.dleq && hasValidDleq(p, keyset), 'restored proofs carry the DLEQ of the first issue');
    assert.ok((await after.checkProofsStates(proofs)).every((s) => s.state === 'UNSPENT'));

    const received = await after.receive(getEncodedToken({ mint: mint.url, proofs, unit: 'sat' }));
    assert.equal(total(received), 100);
    assert.ok(proofs.every((p) => mint.isSpent(p.secret)), 'the restored proofs were real and are now spent');
    assert.equal(mint.stats().outstanding, 100, 'restore issued nothing new');
    assert.deepEqual((await after.restore(10, 10)).proofs, [], 'counters never used restore nothing');
  });

  test('restore answers only known outputs, in request order, with the signatures first issued and the old "promises" key', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const keyset = wallet.keyChain.getKeyset();
    const inputsOf = (proofs: Proof[]) => proofs.map(({ id, amount, secret, C }) => ({ id, amount, secret, C }));
    const answered = OutputData.createRandomData(8, keyset);
    const { signatures: issued } = await wallet.mint.swap({ inputs: inputsOf(await fund(ln, wallet, 8)), outputs: answered.map((o) => o.blindedMessage) });
    const lost = OutputData.createRandomData(16 + 4, keyset);
    const lostInputs = inputsOf(await fund(ln, wallet, 20));
    mint.knobs.loseResponseNext = 1;
    await assert.rejects(wallet.mint.swap({ inputs: lostInputs, outputs: lost.map((o) => o.blindedMessage) }), { name: 'NetworkError' });
    const [unknown] = OutputData.createRandomData(2, keyset);

    const asked = [unknown, ...lost, answered[0]].map(({ blindedMessage: { id, amount, B_ } }) => ({ id, amount: Number(amount), B_ }));
    const res = await fetch(`${mint.url}/v1/restore`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ outputs: asked }) });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { outputs: { B_: string; amount: number; id: string }[]; signatures: { id: string; amount: number; C_: string; dleq?: unknown }[]; promises: unknown };
    assert.deepEqual(body.outputs, asked.slice(1), 'the never-signed output is left out, the rest keep their order');
    assert.equal(body.signatures.length, lost.length + 1);
    assert.deepEqual(body.promises, body.signatures);
    assert.deepEqual(body.signatures.at(-1), { ...issued[0], amount: Number(issued[0].amount) }, 'the signature is the one first issued, DLEQ included');

    const restored = await wallet.mint.restore({ outputs: lost.map((o) => o.blindedMessage) });
    assert.deepEqual(restored.outputs.map((o) => o.B_), lost.map((o) => o.blindedMessage.B_));
    const recovered = lost.map((o, i) => o.toProof(restored.signatures[i], keyset));
    assert.equal(total(recovered), 20);
    const received = await wallet.receive(getEncodedToken({ mint: mint.url, proofs: recovered, unit: 'sat' }));
    assert.equal(total(received), 20, 'the recovered proofs are spendable');
    assert.equal(mint.stats().outstanding, 28);

    assert.deepEqual(await wallet.mint.restore({ outputs: [unknown.blindedMessage] }), { outputs: [], signatures: [], promises: [] });
    const bad = await fetch(`${mint.url}/v1/restore`, { method: 'POST', body: JSON.stringify({ outputs: [{ amount: 1, id: keyset.id, B_: 'zz' }] }) });
    assert.equal(bad.status, 400);
  });

  test('a mint started with restore: false neither advertises nor answers NUT-09', async (t) => {
    const { wallet, mint } = await world(t, { restore: false });
    assert.equal(wallet.getMintInfo().isSupported(9).supported, false);
    assert.equal(wallet.getMintInfo().isSupported(7).supported, true);
    const res = await fetch(`${mint.url}/v1/restore`, { method: 'POST', body: JSON.stringify({ outputs: [] }) });
    assert.equal(res.status, 404);
  });

  test('melt change whose answer was lost is found again by a wallet restored from its seed alone', async (t) => {
    const { ln, mint } = await world(t);
    ln.knobs.routingFeeMsat = 1000;
    const before = await seededWallet(mint);
    const quote = await before.createMintQuoteBolt11(128);
    ln.pay(quote.request);
    const proofs = await before.mintProofsBolt11(128, quote.quote);
    const invoice = ln.node('shop').createInvoice(50_000);
    const meltQuote = await before.createMeltQuoteBolt11(invoice.bolt11);
    const { send } = await before.send(52, proofs, { includeFees: true });
    mint.knobs.loseResponseNext = 1;
    await assert.rejects(before.meltProofsBolt11(meltQuote, send), { name: 'NetworkError' });
    assert.equal(mint.meltQuoteState(meltQuote.quote), 'PAID');
    assert.ok(ln.lookup(invoice.paymentHash)?.paidAtMs !== undefined, 'the shop was paid');

    const after = await seededWallet(mint);
    const { proofs: everything, lastCounterWithSignature } = await after.batchRestore(20, 10);
    await after.counters.advanceToAtLeast(after.keysetId, (lastCounterWithSignature ?? -1) + 1);
    const states = await after.checkProofsStates(everything);
    const unspent = everything.filter((_, i) => states[i].state === 'UNSPENT');
    assert.equal(total(unspent), 128 - 50 - 1, 'the kept proofs and the 1 sat of change: reserve 2, routing fee 1');
    assert.equal(total(unspent), mint.stats().outstanding);
    const received = await after.receive(getEncodedToken({ mint: mint.url, proofs: unspent, unit: 'sat' }));
    assert.equal(total(received), 77);
  });
});

describe('accounting', () => {
  test("the mint's books balance against Lightning in and out, and against the wallet's proofs", async (t) => {
    const { ln, mint, wallet } = await world(t, { inputFeePpk: 250 });
    ln.knobs.routingFeeMsat = 1500;
    let proofs = await fund(ln, wallet, 500);
    proofs = [...proofs, ...(await fund(ln, wallet, 77))];
    for (const amount of [10, 33, 7]) {
      const { send, keep } = await wallet.send(amount, proofs, { includeFees: true });
      proofs = [...keep, ...(await wallet.receive(getEncodedToken({ mint: mint.url, proofs: send, unit: 'sat' })))];
    }
    const invoice = ln.node('shop').createInvoice(123_456);
    const quote = await wallet.createMeltQuoteBolt11(invoice.bolt11);
    const need = quote.amount.add(quote.fee_reserve);
    const { send, keep } = await wallet.send(need, proofs, { includeFees: true });
    const melted = await wallet.meltProofsBolt11(quote, send);
    proofs = [...keep, ...melted.change];
    const s = mint.stats();
    assert.equal(s.mintedFromLightning, 577);
    assert.equal(s.meltedToLightning, 124);
    assert.equal(s.lightningFees, 2);
    assert.equal(s.outstanding, s.mintedFromLightning - s.meltedToLightning - s.lightningFees - s.inputFees - s.changeKept);
    assert.equal(total(proofs), s.outstanding, "the wallet holds exactly what the mint says is outstanding");
    assert.ok(proofs.every((p) => mint.proofState(p.secret) === 'UNSPENT'));
  });

  test('swap throughput: per-swap time of wallet.receive on a 4-proof token', async (t) => {
    const { ln, mint, wallet } = await world(t);
    let proofs = await fund(ln, wallet, 4096);
    const rounds = 20;
    let inputs = 0;
    const started = performance.now();
    for (let i = 0; i < rounds; i++) {
      const { send, keep } = await wallet.send(15, proofs); // 15 = 8+4+2+1: four proofs
      inputs += send.length;
      proofs = [...keep, ...(await wallet.receive(getEncodedToken({ mint: mint.url, proofs: send, unit: 'sat' })))];
    }
    const perRoundMs = (performance.now() - started) / rounds;
    t.diagnostic(`send+receive round: ${perRoundMs.toFixed(1)} ms (${(inputs / rounds).toFixed(1)} inputs per receive), ${mint.requestCounts()['POST /v1/swap']} swaps`);
    assert.equal(total(proofs), 4096);
  });
});
