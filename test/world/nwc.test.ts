import './ws-global.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NWCClient, Nip47WalletError } from '@getalby/sdk';
import { Wallet, sumProofs } from '@cashu/cashu-ts';
import { LightningNetwork } from './lightning.ts';
import { startMint } from './mint.ts';
import { startRelay, type TestRelay } from './relay.ts';
import { startNwcService, type TestNwcService } from './nwc.ts';

interface Setup {
  relay: TestRelay;
  ln: LightningNetwork;
  nwc: TestNwcService;
  client: NWCClient;
}

const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

async function setup(t: { after: (fn: () => Promise<void>) => void }, balanceSat: number): Promise<Setup> {
  const relay = await startRelay();
  const ln = new LightningNetwork();
  const nwc = await startNwcService({ relayUrl: relay.url, lightning: ln, balanceSat });
  const client = new NWCClient({ nostrWalletConnectUrl: nwc.uri });
  t.after(async () => {
    client.close();
    await nwc.stop();
    await relay.stop();
  });
  return { relay, ln, nwc, client };
}

test('a wallet app reads the service info and balance over NWC', async (t) => {
  const { client, nwc } = await setup(t, 5000);
  assert.match(nwc.uri, /^nostr\+walletconnect:\/\/[0-9a-f]{64}\?relay=ws%3A%2F%2F127\.0\.0\.1%3A\d+&secret=[0-9a-f]{64}$/);
  const info = await client.getInfo();
  assert.equal(info.network, 'regtest');
  assert.equal(info.pubkey, nwc.node.id);
  assert.ok(info.methods.includes('pay_invoice'));
  assert.ok(info.methods.includes('make_invoice'));
  const { balance } = await client.getBalance();
  assert.equal(balance, 5_000_000); // NIP-47 balances are msat
  const capabilities = await client.getWalletServiceInfo();
  assert.ok(capabilities.capabilities.includes('get_balance'));
});

test('paying an invoice over NWC settles it and debits amount plus routing fee', async (t) => {
  const { client, nwc, ln } = await setup(t, 1000);
  ln.knobs.routingFeeMsat = 2000;
  const mint = ln.node('mint');
  const invoice = mint.createInvoice(300_000, 'mint quote');
  const paid = await client.payInvoice({ invoice: invoice.bolt11 });
  assert.equal(paid.preimage, invoice.preimage);
  assert.equal(paid.fees_paid, 2000);
  assert.notEqual(ln.lookup(invoice.paymentHash)!.paidAtMs, undefined);
  assert.equal(nwc.balanceMsat, 1_000_000 - 300_000 - 2000);
  assert.equal((await client.getBalance()).balance, 698_000);
  assert.deepEqual(
    nwc.payments.map((p) => [p.bolt11, p.amountMsat, p.feeMsat]),
    [[invoice.bolt11, 300_000, 2000]],
  );
  const looked = await client.lookupInvoice({ payment_hash: invoice.paymentHash });
  assert.equal(looked.state, 'settled');
  assert.equal(looked.type, 'outgoing');
});

test('the @getalby/sdk NWC client pays a real mint quote, and the cashu-ts wallet mints the sats', async (t) => {
  const { client, nwc, ln } = await setup(t, 2000);
  const mint = await startMint({ lightning: ln });
  t.after(() => mint.stop());
  const wallet = new Wallet(mint.url);
  await wallet.loadMint();
  const quote = await wallet.createMintQuoteBolt11(1500);
  await client.payInvoice({ invoice: quote.request });
  assert.equal(nwc.balanceMsat, 500_000);
  const proofs = await wallet.mintProofsBolt11(1500, quote.quote);
  assert.equal(Number(sumProofs(proofs)), 1500);
  assert.equal(mint.mintQuoteState(quote.quote), 'ISSUED');
});

test('an underfunded payment fails with INSUFFICIENT_BALANCE and pays nothing', async (t) => {
  const { client, nwc, ln } = await setup(t, 100);
  const invoice = ln.node('mint').createInvoice(100_001, 'just too much');
  await assert.rejects(client.payInvoice({ invoice: invoice.bolt11 }), (err: unknown) => {
    assert.ok(err instanceof Nip47WalletError);
    assert.equal(err.code, 'INSUFFICIENT_BALANCE');
    return true;
  });
  assert.equal(ln.lookup(invoice.paymentHash)!.paidAtMs, undefined);
  assert.equal(nwc.balanceMsat, 100_000);
  assert.equal(nwc.payments.length, 0);
});

test('a failed Lightning payment is reported and refunds the balance', async (t) => {
  const { client, nwc, ln } = await setup(t, 100);
  const invoice = ln.node('mint').createInvoice(10_000);
  ln.knobs.failNextPayments = 1;
  await assert.rejects(client.payInvoice({ invoice: invoice.bolt11 }), (err: unknown) => {
    assert.ok(err instanceof Nip47WalletError);
    assert.equal(err.code, 'PAYMENT_FAILED');
    return true;
  });
  assert.equal(nwc.balanceMsat, 100_000);
  // Paying twice is refused: the first attempt failed, the second succeeds, a third is ALREADY_PAID.
  await client.payInvoice({ invoice: invoice.bolt11 });
  await assert.rejects(client.payInvoice({ invoice: invoice.bolt11 }), /ALREADY_PAID/);
  assert.equal(nwc.balanceMsat, 90_000);
});

test('an invoice made over NWC credits the balance once someone pays it', async (t) => {
  const { client, nwc, ln } = await setup(t, 0);
  const made = await client.makeInvoice({ amount: 50_000, description: 'top up' });
  assert.equal(made.type, 'incoming');
  assert.equal(made.state, 'pending');
  assert.equal(made.amount, 50_000);
  assert.equal((await client.lookupInvoice({ invoice: made.invoice })).state, 'pending');
  ln.pay(made.invoice); // paid by someone else on the network
  assert.equal(nwc.balanceMsat, 50_000);
  assert.equal((await client.getBalance()).balance, 50_000);
  assert.equal((await client.lookupInvoice({ payment_hash: made.payment_hash })).state, 'settled');
  const { transactions } = await client.listTransactions({});
  assert.deepEqual(transactions.map((tx) => [tx.type, tx.amount]), [['incoming', 50_000]]);
});

test('the wallet service answers again after the relay restarts', async (t) => {
  const { client, relay } = await setup(t, 7);
  await relay.down();
  await relay.up();
  // The service's pool reconnects on its own after a 1 s delay, then resubscribes at once.
  const deadline = Date.now() + 10_000;
  while (relay.connections() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(relay.connections(), 1);
  assert.equal((await client.getBalance()).balance, 7000);
});

test('stopping the service leaves no unhandled errors behind', async () => {
  const relay = await startRelay();
  const ln = new LightningNetwork();
  const nwc = await startNwcService({ relayUrl: relay.url, lightning: ln, balanceSat: 1 });
  const client = new NWCClient({ nostrWalletConnectUrl: nwc.uri });
  await client.getBalance();
  client.close();
  await nwc.stop();
  await relay.stop();
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(unhandled, []);
  assert.equal(relay.connections(), 0);
});
