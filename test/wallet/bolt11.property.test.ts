// Hostile input for BOLT11 invoices: whatever a user pastes into `wallet withdraw` and whatever
// invoice a mint hands back for a funding quote. Junk is an InvoiceError before any mint call;
// an invoice or a quote for another amount than agreed is refused before a sat moves.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { bech32 } from '@scure/base';
import { LightningNetwork } from '../world/lightning.ts';
import { startNwcService } from '../world/nwc.ts';
import { startRelay } from '../world/relay.ts';
import { assertFundingInvoice, assertMeltQuote, MAX_INVOICE_CHARS, parseBolt11 } from '../../wallet/bolt11.ts';
import { InvoiceError, WalletError } from '../../wallet/errors.ts';
import { createFundingQuote } from '../../wallet/funding.ts';
import { CashuWallet } from '../../wallet/index.ts';
import { openDatabase } from '../../db/sqlite.ts';
import { withdraw } from '../../wallet/withdraw.ts';
import { assertProperty } from '../property.ts';
import { fundNow, openContext, tempDir, testMint } from './world.ts';

const ln = new LightningNetwork();
const node = ln.node('payee');
const BECH32 = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';

/** The same invoice with its amount taken out of the prefix (an amountless invoice; the decoder checks no signature). */
function withoutAmount(bolt11: string): string {
  const { words } = bech32.decode(bolt11 as `${string}1${string}`, MAX_INVOICE_CHARS);
  return bech32.encode('lnbcrt', words, MAX_INVOICE_CHARS);
}

function isInvoiceError(err: unknown): boolean {
  return err instanceof InvoiceError && err.code === 'invalid_invoice' && err.message.length < 300;
}

test('any pasted text is a BOLT11 invoice with a safe amount, or an InvoiceError', () => {
  const real = node.createInvoice(21_000).bolt11;
  const text = fc.oneof(
    fc.string({ maxLength: 100 }),
    fc.string({ unit: fc.constantFrom(...BECH32), maxLength: 400 }).map((s) => `lnbc${s}`),
    fc.nat({ max: real.length }).map((n) => real.slice(0, n)),
    fc.tuple(fc.nat({ max: real.length - 1 }), fc.constantFrom(...BECH32)).map(([i, c]) => real.slice(0, i) + c + real.slice(i + 1)),
    fc.constantFrom(real.toUpperCase(), `lightning:${real}`, ` ${real}\n`, `lnbc1${'q'.repeat(MAX_INVOICE_CHARS)}`, 'lnbc', 'lnbc1', 'lntb10u1'),
  );
  assertProperty(
    fc.property(text, (s) => {
      let inv;
      try {
        inv = parseBolt11(s);
      } catch (err) {
        assert.ok(isInvoiceError(err), `not an InvoiceError: ${(err as Error)?.stack ?? String(err)}`);
        return;
      }
      assert.ok(inv.amountMsat === null || (Number.isSafeInteger(inv.amountMsat) && inv.amountMsat > 0));
      assert.match(inv.paymentHash, /^[0-9a-f]{64}$/);
      assert.ok(Number.isSafeInteger(inv.timestampSec) && Number.isSafeInteger(inv.expirySec));
    }),
    { seed: 1381, numRuns: 500 },
  );
});

test('an invoice reads back the amount it was made for, and a funding or melt quote for another amount is refused', () => {
  assertProperty(
    fc.property(fc.integer({ min: 1, max: 2_100_000_000_000 }), fc.integer({ min: -5, max: 5 }), (amountSat, delta) => {
      const inv = parseBolt11(node.createInvoice(amountSat * 1000).bolt11);
      assert.equal(inv.amountMsat, amountSat * 1000);
      assert.equal(assertFundingInvoice(inv.invoice, amountSat, 'sat').amountMsat, amountSat * 1000);
      assert.equal(assertFundingInvoice(inv.invoice, amountSat * 1000, 'msat').amountMsat, amountSat * 1000);
      assertMeltQuote(inv, amountSat, 'sat');
      if (delta !== 0 && amountSat + delta > 0) {
        assert.throws(() => assertFundingInvoice(inv.invoice, amountSat + delta, 'sat'), InvoiceError);
        assert.throws(() => assertMeltQuote(inv, amountSat + delta, 'sat'), InvoiceError);
      }
    }),
    { seed: 1382, numRuns: 200 },
  );
  // An invoice of a fraction of a sat may be quoted rounded either way, never more.
  const odd = parseBolt11(node.createInvoice(1_500).bolt11);
  assertMeltQuote(odd, 1, 'sat');
  assertMeltQuote(odd, 2, 'sat');
  assert.throws(() => assertMeltQuote(odd, 3, 'sat'), InvoiceError);
});

interface Lies {
  /** Answer mint quotes with an invoice for this many times the amount. */
  invoiceFactor: number;
  /** Quote melts at this many times the invoice's amount, plus this many sats. */
  meltFactor: number;
  meltExtraSat: number;
}

/** A mint behind a proxy that can lie about quotes (a compromised or buggy mint). */
async function lyingMint(t: TestContext, lnNet: LightningNetwork) {
  const mint = await testMint(t, lnNet);
  const lies: Lies = { invoiceFactor: 1, meltFactor: 1, meltExtraSat: 0 };
  const requests: string[] = [];
  const evil = lnNet.node('evil');
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    requests.push(`${req.method} ${req.url}`);
    const upstream = await fetch(mint.url + req.url, { method: req.method, headers: { 'content-type': 'application/json' }, body: req.method === 'GET' ? undefined : Buffer.concat(chunks) });
    let text = await upstream.text();
    if (upstream.ok && req.method === 'POST' && req.url === '/v1/mint/quote/bolt11' && lies.invoiceFactor !== 1) {
      const q = JSON.parse(text) as { request: string; amount: number };
      q.request = evil.createInvoice(q.amount * 1000 * lies.invoiceFactor).bolt11;
      text = JSON.stringify(q);
    }
    if (upstream.ok && req.method === 'POST' && req.url === '/v1/melt/quote/bolt11' && (lies.meltFactor !== 1 || lies.meltExtraSat)) {
      const q = JSON.parse(text) as { amount: number };
      q.amount = q.amount * lies.meltFactor + lies.meltExtraSat;
      text = JSON.stringify(q);
    }
    res.writeHead(upstream.status, { 'content-type': 'application/json' });
    res.end(text);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, lies, requests };
}

test('a mint answering a funding quote with an invoice for more is refused before the invoice is shown or paid over NWC', async (t) => {
  const lnNet = new LightningNetwork();
  const mint = await lyingMint(t, lnNet);
  const relay = await startRelay();
  const nwc = await startNwcService({ relayUrl: relay.url, lightning: lnNet, balanceSat: 100_000 });
  const dir = tempDir(t);
  const db = openDatabase(path.join(dir, 'satroute.sqlite'));
  const wallet = new CashuWallet({ db, dataDir: dir, mints: [mint.url] });
  t.after(async () => {
    wallet.stop();
    db.close();
    await nwc.stop();
    await relay.stop();
  });
  await wallet.connectNwc(nwc.uri);
  mint.lies.invoiceFactor = 100;
  // cashu-ts 4.8 checks a sat quote's invoice itself (createMintQuoteBolt11): refused, as unavailable.
  await assert.rejects(wallet.fund(1000, { pollMs: 10, timeoutMs: 2000 }), (err: unknown) => err instanceof WalletError && /invoice amount does not match/.test((err as Error).message));
  assert.equal(nwc.payments.length, 0, 'nothing paid over NWC');
  assert.equal(nwc.balanceMsat, 100_000_000);
  assert.deepEqual(db.prepare('SELECT quote_id FROM wallet_mint_quotes').all(), [], 'no quote kept to show or pay later');

  // A quote kept from before that check (or in a unit cashu-ts does not check): still never paid.
  for (const [id, unit, amount] of [['old', 'sat', 50], ['msat', 'msat', 50_000]] as const) {
    const bad = lnNet.node('evil').createInvoice(5_000_000).bolt11;
    db.prepare(`INSERT INTO wallet_mint_quotes (quote_id, mint, unit, amount, request, expiry, state, pay_via, created_at, updated_at) VALUES (?, ?, ?, ?, ?, NULL, 'unpaid', 'nwc', 0, 0)`).run(id, mint.url, unit, amount, bad);
    await assert.rejects(wallet.payWithNwc(id), (err: unknown) => isInvoiceError(err) && /asks for 5000000 msat, not the 50000 msat quoted/.test((err as Error).message));
  }
  assert.equal(nwc.payments.length, 0);
  assert.equal(nwc.balanceMsat, 100_000_000);
});

test('a withdrawal of junk or of an amountless invoice fails before any mint call; a mint quoting more than the invoice is refused with nothing spent', async (t) => {
  const lnNet = new LightningNetwork();
  const mint = await lyingMint(t, lnNet);
  const ctx = openContext(path.join(tempDir(t), 'satroute.db'), [mint.url]);
  t.after(() => ctx.db.close());
  await fundNow(ctx, lnNet, 3000, mint.url);
  const before = JSON.stringify(ctx.store.balances());
  const calls = mint.requests.length;
  for (const junk of ['', 'lnbc', 'not an invoice', `lnbc1${'q'.repeat(MAX_INVOICE_CHARS)}`, lnNet.node('x').createInvoice(1000).bolt11.slice(0, -3)]) {
    await assert.rejects(withdraw(ctx, junk), (err: unknown) => isInvoiceError(err), JSON.stringify(junk.slice(0, 20)));
  }
  const amountless = withoutAmount(lnNet.node('x').createInvoice(1000).bolt11);
  assert.equal(parseBolt11(amountless).amountMsat, null);
  await assert.rejects(withdraw(ctx, amountless), (err: unknown) => isInvoiceError(err) && /no amount/.test((err as Error).message));
  assert.equal(mint.requests.length, calls, 'no mint call for an invoice that is not one');

  // cashu-ts 4.8 refuses a sat melt quote over the invoice itself (createMeltQuoteBolt11); assertMeltQuote
  // is the same check for every unit. Either way: refused before the melt, nothing spent.
  for (const [factor, extra] of [[3, 0], [1, 1]]) {
    mint.lies.meltFactor = factor;
    mint.lies.meltExtraSat = extra;
    await assert.rejects(withdraw(ctx, lnNet.node('shop').createInvoice(500_000).bolt11), (err: unknown) => err instanceof WalletError);
  }
  mint.lies.meltFactor = 1;
  assert.equal(JSON.stringify(ctx.store.balances()), before, 'nothing spent or pending');
  assert.ok(!mint.requests.includes('POST /v1/melt/bolt11'), 'the melt was never asked for');
  mint.lies.meltExtraSat = 0;
  const ok = await withdraw(ctx, lnNet.node('shop').createInvoice(500_000).bolt11);
  assert.equal(ok.state, 'paid');
});

test('a funding quote from an honest mint passes the invoice check', async (t) => {
  const lnNet = new LightningNetwork();
  const mint = await testMint(t, lnNet);
  const ctx = openContext(path.join(tempDir(t), 'satroute.db'), [mint.url]);
  t.after(() => ctx.db.close());
  const q = await createFundingQuote(ctx, 777);
  assert.equal(parseBolt11(q.bolt11).amountMsat, 777_000);
});
