import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as cashu from '@cashu/cashu-ts';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { bech32 } from '@scure/base';
import { decode } from 'light-bolt11-decoder';
import { LightningError, LightningNetwork, decodeInvoice, encodeAmount } from './lightning.ts';

// Marked internal in cashu-ts' types but exported: the check its Wallet runs on mint quotes.
const bolt11AmountMsat = (cashu as unknown as { bolt11AmountMsat(invoice: string): bigint | null }).bolt11AmountMsat;

type Section = ReturnType<typeof decode>['sections'][number];
const section = (bolt11: string, name: string) => (decode(bolt11).sections.find((s: Section) => s.name === name) as { value?: unknown } | undefined)?.value;

/** The payee per BOLT11: recover the key that signed sha256(hrp || data bits). */
function recoverPayee(bolt11: string): string {
  const { prefix, words } = bech32.decode(bolt11 as `${string}1${string}`, false);
  const dataWords = words.slice(0, -104); // the signature is the last 65 bytes = 104 words
  const sigBytes = bech32.fromWords(words.slice(-104));
  const bits = dataWords.map((w) => w.toString(2).padStart(5, '0')).join('');
  const padded = bits.padEnd(Math.ceil(bits.length / 8) * 8, '0');
  const data = Uint8Array.from(padded.match(/.{8}/g)!.map((b) => parseInt(b, 2)));
  const digest = sha256(new Uint8Array([...new TextEncoder().encode(prefix), ...data]));
  const recovered = new Uint8Array(65); // noble's 'recovered' format: recovery id first
  recovered[0] = sigBytes[64];
  recovered.set(sigBytes.slice(0, 64), 1);
  return bytesToHex(secp256k1.recoverPublicKey(recovered, digest, { prehash: false }));
}

describe('simulated Lightning invoices', () => {
  test('standard decoders read the amount, hash, description and expiry of an invoice', () => {
    const ln = new LightningNetwork();
    const invoice = ln.node('alice').createInvoice(21_000, 'two coffees', 600);
    assert.match(invoice.bolt11, /^lnbcrt210n1/);
    assert.equal(section(invoice.bolt11, 'amount'), '21000');
    assert.equal(section(invoice.bolt11, 'payment_hash'), invoice.paymentHash);
    assert.equal(section(invoice.bolt11, 'description'), 'two coffees');
    assert.equal(decode(invoice.bolt11).expiry, 600);
    assert.equal(bolt11AmountMsat(invoice.bolt11), 21_000n);
    assert.deepEqual(decodeInvoice(invoice.bolt11), {
      amountMsat: 21_000,
      paymentHash: invoice.paymentHash,
      description: 'two coffees',
      timestampSec: Math.floor(invoice.createdAtMs / 1000),
      expirySec: 600,
    });
    assert.equal(bytesToHex(sha256(hexToBytes(invoice.preimage))), invoice.paymentHash);
  });

  test('every amount form (m, u, n, p multipliers) decodes to the same msat in both decoders', () => {
    const node = new LightningNetwork().node('bob');
    for (const amountMsat of [1, 7, 999, 1000, 1500, 100_000, 123_456_789, 100_000_000, 2_100_000_000_000]) {
      const { bolt11 } = node.createInvoice(amountMsat);
      assert.equal(bolt11AmountMsat(bolt11), BigInt(amountMsat), `cashu-ts, ${amountMsat} msat (${encodeAmount(amountMsat)})`);
      assert.equal(section(bolt11, 'amount'), String(amountMsat), `light-bolt11-decoder, ${amountMsat} msat`);
    }
    for (const bad of [0, -5, 1.5, Number.NaN]) assert.throws(() => encodeAmount(bad));
  });

  test("the invoice signature recovers to the issuing node's id", () => {
    const ln = new LightningNetwork();
    const alice = ln.node('alice');
    const bob = ln.node('bob');
    assert.notEqual(alice.id, bob.id);
    assert.equal(recoverPayee(alice.createInvoice(5000, 'x').bolt11), alice.id);
    assert.equal(recoverPayee(bob.createInvoice(1).bolt11), bob.id);
  });
});

describe('simulated Lightning payments', () => {
  test('paying an invoice returns its preimage, marks it paid and tells listeners once', () => {
    const ln = new LightningNetwork();
    const invoice = ln.node('shop').createInvoice(50_000);
    const other = ln.node('shop').createInvoice(10);
    const forThis: string[] = [];
    const forAny: string[] = [];
    ln.onPaid((i) => forThis.push(i.paymentHash), invoice.paymentHash);
    const stop = ln.onPaid((i) => forAny.push(i.paymentHash));
    const payment = ln.pay(invoice.bolt11);
    assert.deepEqual(payment, { preimage: invoice.preimage, paymentHash: invoice.paymentHash, amountMsat: 50_000, feeMsat: 0 });
    assert.ok(ln.lookup(invoice.paymentHash)?.paidAtMs !== undefined);
    assert.equal(ln.lookup(other.paymentHash)?.paidAtMs, undefined);
    stop();
    ln.pay(other.bolt11);
    assert.deepEqual(forThis, [invoice.paymentHash]);
    assert.deepEqual(forAny, [invoice.paymentHash], 'an unsubscribed listener hears nothing more');
  });

  test('an invoice cannot be paid twice', () => {
    const ln = new LightningNetwork();
    const { bolt11 } = ln.node('shop').createInvoice(1000);
    ln.pay(bolt11);
    assert.throws(() => ln.pay(bolt11), (e: unknown) => e instanceof LightningError && e.code === 'ALREADY_PAID');
  });

  test('an expired invoice cannot be paid (injected clock)', () => {
    let nowMs = 1_700_000_000_000;
    const ln = new LightningNetwork(() => nowMs);
    const invoice = ln.node('shop').createInvoice(1000, '', 60);
    assert.equal(invoice.expiresAtMs, nowMs + 60_000);
    nowMs += 60_001;
    assert.throws(() => ln.pay(invoice.bolt11), { code: 'EXPIRED' });
    assert.equal(ln.lookup(invoice.paymentHash)?.paidAtMs, undefined);
  });

  test('unknown and malformed invoices are refused', () => {
    const ln = new LightningNetwork();
    const foreign = new LightningNetwork().node('elsewhere').createInvoice(1000);
    assert.throws(() => ln.pay(foreign.bolt11), { code: 'INVOICE_NOT_FOUND' });
    assert.throws(() => ln.pay('lnbcrt1garbage'), { code: 'INVALID_INVOICE' });
  });

  test('failNextPayments fails exactly that many payments, which can then be retried', () => {
    const ln = new LightningNetwork();
    const { bolt11 } = ln.node('shop').createInvoice(1000);
    ln.knobs.failNextPayments = 2;
    assert.throws(() => ln.pay(bolt11), { code: 'ROUTE_FAILED' });
    assert.throws(() => ln.pay(bolt11), { code: 'ROUTE_FAILED' });
    assert.equal(ln.pay(bolt11).amountMsat, 1000);
  });

  test('the routing fee is charged, and a payment whose fee exceeds the limit is refused unpaid', () => {
    const ln = new LightningNetwork();
    ln.knobs.routingFeeMsat = 2500;
    assert.equal(ln.feeFor(1_000_000), 2500);
    const invoice = ln.node('shop').createInvoice(1_000_000);
    assert.throws(() => ln.pay(invoice.bolt11, 2000), { code: 'FEE_TOO_HIGH' });
    assert.equal(ln.lookup(invoice.paymentHash)?.paidAtMs, undefined);
    const payment = ln.pay(invoice.bolt11, 2500);
    assert.equal(payment.feeMsat, 2500);
    assert.equal(ln.lookup(invoice.paymentHash)?.feeMsat, 2500);
  });
});
