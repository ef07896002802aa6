// A simulated Lightning network that issues and pays invoices in real BOLT11 format.
// Invoices are bech32-encoded and signed by the issuing node's secp256k1 key, so any
// standard decoder (light-bolt11-decoder, cashu-ts' bolt11AmountMsat) reads them.
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js';
import { bech32 } from '@scure/base';
import { decode as decodeBolt11 } from 'light-bolt11-decoder';

export type Clock = () => number; // milliseconds since the epoch

export interface Invoice {
  bolt11: string;
  paymentHash: string;
  preimage: string;
  amountMsat: number;
  description: string;
  createdAtMs: number;
  expiresAtMs: number;
  payee: string; // node id (hex pubkey)
  paidAtMs?: number;
  feeMsat?: number;
}

export interface Payment {
  preimage: string;
  paymentHash: string;
  amountMsat: number;
  feeMsat: number;
}

export class LightningError extends Error {
  constructor(
    readonly code: 'INVOICE_NOT_FOUND' | 'ALREADY_PAID' | 'EXPIRED' | 'INVALID_INVOICE' | 'ROUTE_FAILED' | 'FEE_TOO_HIGH',
    message: string,
  ) {
    super(message);
    this.name = 'LightningError';
  }
}

type PaidListener = (invoice: Invoice) => void;

/** BOLT11 human-readable amount for a msat value ("lnbcrt" + amount). */
export function encodeAmount(amountMsat: number): string {
  if (!Number.isSafeInteger(amountMsat) || amountMsat <= 0) throw new Error(`invalid invoice amount ${amountMsat} msat`);
  const msat = BigInt(amountMsat);
  // 1 BTC = 1e11 msat; multipliers m=1e-3, u=1e-6, n=1e-9, p=1e-12 BTC.
  if (msat % 100_000_000n === 0n) return `${msat / 100_000_000n}m`;
  if (msat % 100_000n === 0n) return `${msat / 100_000n}u`;
  if (msat % 100n === 0n) return `${msat / 100n}n`;
  return `${msat * 10n}p`;
}

function numberToWords(value: number): number[] {
  const words: number[] = [];
  let v = value;
  do {
    words.unshift(v & 31);
    v = Math.floor(v / 32);
  } while (v > 0);
  return words;
}

function wordsFixed(value: number, count: number): number[] {
  const words = numberToWords(value);
  while (words.length < count) words.unshift(0);
  return words;
}

function taggedField(type: number, data: number[]): number[] {
  return [type, ...wordsFixed(data.length, 2), ...data];
}

const TAG = { paymentHash: 1, description: 13, expiry: 6, minFinalCltv: 24, paymentSecret: 16 } as const;

export interface EncodeInvoiceInput {
  amountMsat: number;
  paymentHash: Uint8Array;
  paymentSecret: Uint8Array;
  description: string;
  timestampSec: number;
  expirySec: number;
  privateKey: Uint8Array;
  network?: string; // bech32 hrp network part; default "bcrt" (regtest)
}

/** Encode and sign a BOLT11 invoice. */
export function encodeInvoice(input: EncodeInvoiceInput): string {
  const hrp = `ln${input.network ?? 'bcrt'}${encodeAmount(input.amountMsat)}`;
  const data: number[] = [
    ...wordsFixed(input.timestampSec, 7),
    ...taggedField(TAG.paymentHash, bech32.toWords(input.paymentHash)),
    ...taggedField(TAG.paymentSecret, bech32.toWords(input.paymentSecret)),
    ...taggedField(TAG.description, bech32.toWords(new TextEncoder().encode(input.description))),
    ...taggedField(TAG.expiry, numberToWords(input.expirySec)),
    ...taggedField(TAG.minFinalCltv, numberToWords(18)),
  ];
  const hrpBytes = new TextEncoder().encode(hrp);
  const dataBytes = Uint8Array.from(wordsToBytesPadded(data));
  const msg = new Uint8Array(hrpBytes.length + dataBytes.length);
  msg.set(hrpBytes);
  msg.set(dataBytes, hrpBytes.length);
  const digest = sha256(msg);
  // 'recovered' = recovery byte first, then r||s; BOLT11 wants r||s||recovery.
  const recovered = secp256k1.sign(digest, input.privateKey, { prehash: false, format: 'recovered' });
  const sig = new Uint8Array(65);
  sig.set(recovered.subarray(1, 65), 0);
  sig[64] = recovered[0];
  return bech32.encode(hrp, [...data, ...bech32.toWords(sig)], false);
}

// BOLT11 signs the data words padded with zero bits to a whole byte.
function wordsToBytesPadded(words: number[]): number[] {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const w of words) {
    acc = (acc << 5) | w;
    bits += 5;
    while (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out.push((acc << (8 - bits)) & 0xff);
  return out;
}

export interface DecodedInvoice {
  amountMsat: number | undefined;
  paymentHash: string;
  description: string;
  timestampSec: number;
  expirySec: number;
}

/** Decode a BOLT11 invoice with a standard decoder. */
export function decodeInvoice(bolt11: string): DecodedInvoice {
  let decoded: ReturnType<typeof decodeBolt11>;
  try {
    decoded = decodeBolt11(bolt11);
  } catch (err) {
    throw new LightningError('INVALID_INVOICE', `not a BOLT11 invoice: ${(err as Error).message}`);
  }
  const section = (name: string) => decoded.sections.find((s) => s.name === name) as { value?: unknown } | undefined;
  const amount = section('amount')?.value;
  return {
    amountMsat: amount === undefined ? undefined : Number(amount),
    paymentHash: String(section('payment_hash')?.value ?? ''),
    description: String(section('description')?.value ?? ''),
    timestampSec: Number(section('timestamp')?.value ?? 0),
    expirySec: decoded.expiry ?? 3600,
  };
}

export interface LightningNode {
  readonly id: string;
  readonly name: string;
  /** Issue an invoice payable to this node. */
  createInvoice(amountMsat: number, description?: string, expirySec?: number): Invoice;
}

/**
 * The simulated network: nodes issue invoices, anyone can pay them (the payer's balance is
 * its own business: the mint and the NWC service keep their own). Knobs: a routing fee and
 * failing the next N payments.
 */
export class LightningNetwork {
  private readonly invoices = new Map<string, Invoice>();
  private readonly listeners = new Map<string, Set<PaidListener>>();
  private readonly anyListeners = new Set<PaidListener>();
  readonly knobs = { routingFeeMsat: 0, failNextPayments: 0 };

  constructor(private readonly clock: Clock = Date.now) {}

  /** A node with its own key; its invoices are signed by it. */
  node(name: string): LightningNode {
    const privateKey = secp256k1.utils.randomSecretKey();
    const id = bytesToHex(secp256k1.getPublicKey(privateKey, true));
    return {
      id,
      name,
      createInvoice: (amountMsat, description = '', expirySec = 3600) => {
        const preimage = randomBytes(32);
        const paymentHash = sha256(preimage);
        const nowMs = this.clock();
        const bolt11 = encodeInvoice({
          amountMsat,
          paymentHash,
          paymentSecret: randomBytes(32),
          description,
          timestampSec: Math.floor(nowMs / 1000),
          expirySec,
          privateKey,
        });
        const invoice: Invoice = {
          bolt11,
          paymentHash: bytesToHex(paymentHash),
          preimage: bytesToHex(preimage),
          amountMsat,
          description,
          createdAtMs: nowMs,
          expiresAtMs: nowMs + expirySec * 1000,
          payee: id,
        };
        this.invoices.set(invoice.paymentHash, invoice);
        return invoice;
      },
    };
  }

  lookup(paymentHash: string): Invoice | undefined {
    return this.invoices.get(paymentHash);
  }

  /** Fee the network would charge to pay this amount. */
  feeFor(_amountMsat: number): number {
    return this.knobs.routingFeeMsat;
  }

  /**
   * Pay an invoice issued on this network. Throws LightningError when it cannot. A node paying
   * its own invoice (`payer` = the payee's id) settles internally: no routing fee.
   */
  pay(bolt11: string, maxFeeMsat = Number.MAX_SAFE_INTEGER, payer?: string): Payment {
    const decoded = decodeInvoice(bolt11);
    const invoice = this.invoices.get(decoded.paymentHash);
    if (!invoice || invoice.bolt11 !== bolt11) throw new LightningError('INVOICE_NOT_FOUND', 'no route to the invoice payee');
    if (invoice.paidAtMs !== undefined) throw new LightningError('ALREADY_PAID', 'invoice already paid');
    if (this.clock() > invoice.expiresAtMs) throw new LightningError('EXPIRED', 'invoice expired');
    if (this.knobs.failNextPayments > 0) {
      this.knobs.failNextPayments--;
      throw new LightningError('ROUTE_FAILED', 'payment failed: no route found');
    }
    const feeMsat = payer === invoice.payee ? 0 : this.feeFor(invoice.amountMsat);
    if (feeMsat > maxFeeMsat) throw new LightningError('FEE_TOO_HIGH', `routing fee ${feeMsat} msat exceeds the limit ${maxFeeMsat} msat`);
    invoice.paidAtMs = this.clock();
    invoice.feeMsat = feeMsat;
    for (const l of this.listeners.get(invoice.paymentHash) ?? []) l(invoice);
    for (const l of this.anyListeners) l(invoice);
    return { preimage: invoice.preimage, paymentHash: invoice.paymentHash, amountMsat: invoice.amountMsat, feeMsat };
  }

  /** Call back when the invoice with this hash is paid (or every invoice, without a hash). */
  onPaid(listener: PaidListener, paymentHash?: string): () => void {
    if (paymentHash === undefined) {
      this.anyListeners.add(listener);
      return () => this.anyListeners.delete(listener);
    }
    let set = this.listeners.get(paymentHash);
    if (!set) this.listeners.set(paymentHash, (set = new Set()));
    set.add(listener);
    return () => set!.delete(listener);
  }
}
