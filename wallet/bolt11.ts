// BOLT11 invoices where the wallet meets them: the mint's invoice for a funding quote (shown to
// the user, or paid over NWC) and the user's invoice for a withdrawal (melted at the mint).
// Read locally (light-bolt11-decoder; signatures are the payer's wallet's business) to refuse
// junk and amountless invoices before any mint call, and to check amounts against the quote
// right before a sat moves. cashu-ts 4.8 makes the same checks when a sat quote is created;
// these also cover msat quotes and a quote stored earlier that NWC is about to pay.
import { decode } from 'light-bolt11-decoder';
import { InvoiceError } from './errors.ts';

/** Longer than any invoice a node writes (route hints included); bech32 work stays bounded. */
export const MAX_INVOICE_CHARS = 8_192;

export interface Bolt11 {
  /** The invoice exactly as to be paid (no `lightning:` prefix, lower case). */
  invoice: string;
  /** null: an amountless invoice. */
  amountMsat: number | null;
  paymentHash: string;
  timestampSec: number;
  expirySec: number;
}

/** Decode an invoice; throws InvoiceError for anything that is not one with a sane amount. */
export function parseBolt11(text: string): Bolt11 {
  if (typeof text !== 'string') throw new InvoiceError('not a BOLT11 invoice');
  const invoice = text.trim().replace(/^lightning:/i, '').toLowerCase();
  if (!/^ln[a-z0-9]+$/.test(invoice)) throw new InvoiceError('not a BOLT11 invoice: expected lnbc..., lntb... or lnbcrt...');
  if (invoice.length > MAX_INVOICE_CHARS) throw new InvoiceError(`not a BOLT11 invoice: longer than ${MAX_INVOICE_CHARS} characters`);
  let sections: { name: string; value?: unknown }[];
  let expiry: unknown;
  try {
    const d = decode(invoice);
    sections = d.sections as { name: string; value?: unknown }[];
    expiry = d.expiry;
  } catch (err) {
    throw new InvoiceError(`not a BOLT11 invoice: ${err instanceof Error ? err.message.slice(0, 120) : 'undecodable'}`);
  }
  const value = (name: string) => sections.find((s) => s.name === name)?.value;
  const amount = value('amount');
  let amountMsat: number | null = null;
  if (amount !== undefined) {
    amountMsat = typeof amount === 'string' && /^\d+$/.test(amount) ? Number(amount) : NaN;
    if (!Number.isSafeInteger(amountMsat) || amountMsat <= 0) throw new InvoiceError('BOLT11 invoice with an amount out of range');
  }
  const paymentHash = value('payment_hash');
  if (typeof paymentHash !== 'string' || !/^[0-9a-f]{64}$/.test(paymentHash)) throw new InvoiceError('BOLT11 invoice without a payment hash');
  const timestampSec = Number(value('timestamp'));
  const expirySec = Number(expiry ?? 3600);
  return {
    invoice,
    amountMsat,
    paymentHash,
    timestampSec: Number.isSafeInteger(timestampSec) && timestampSec >= 0 ? timestampSec : 0,
    expirySec: Number.isSafeInteger(expirySec) && expirySec >= 0 ? expirySec : 3600,
  };
}

/** msat in one unit of a sat or msat keyset, or null for units an invoice cannot be compared with. */
function msatPer(unit: string): number | null {
  return unit === 'sat' ? 1000 : unit === 'msat' ? 1 : null;
}

/**
 * A funding invoice must ask for exactly the quoted amount. Throws InvoiceError otherwise (and
 * for an amountless invoice, which a payer could be talked into paying any amount on).
 */
export function assertFundingInvoice(bolt11: string, amount: number, unit: string): Bolt11 {
  const inv = parseBolt11(bolt11);
  if (inv.amountMsat === null) throw new InvoiceError(`the mint's invoice has no amount; the quote was for ${amount} ${unit}`);
  const per = msatPer(unit);
  if (per !== null && inv.amountMsat !== amount * per) {
    throw new InvoiceError(`the mint's invoice asks for ${inv.amountMsat} msat, not the ${amount * per} msat quoted`);
  }
  return inv;
}

/**
 * A melt quote must be for what the invoice pays: its msat amount in the quote's unit, rounded
 * either way (mints differ). Throws InvoiceError when the mint quotes more.
 */
export function assertMeltQuote(inv: Bolt11, quoteAmount: number, unit: string): void {
  const per = msatPer(unit);
  if (per === null || inv.amountMsat === null) return;
  const floor = Math.floor(inv.amountMsat / per);
  const ceil = Math.ceil(inv.amountMsat / per);
  if (quoteAmount !== floor && quoteAmount !== ceil) {
    throw new InvoiceError(`the mint quotes ${quoteAmount} ${unit} for an invoice of ${inv.amountMsat} msat`);
  }
}
