// The test mint's bookkeeping: keysets, quotes, spent secrets, issued signatures and the
// NUT-03/04/05/07/09 operations, independent of HTTP. Everything lives in Maps; all money is an integer in
// the unit of the keyset or quote it belongs to.
import { randomBytes } from 'node:crypto';
import { LightningError, decodeInvoice, type Clock, type LightningNetwork, type LightningNode } from '../lightning.ts';
import { MintError, MintErrorCode } from './errors.ts';
import { Keyset, proofY, type BlindSignatureJson, type KeysetIdVersion, type ProofInput, type Unit } from './keys.ts';
import type { BlindedMessageBody, CheckStateBody, MeltBody, MeltQuoteBody, MintBody, MintQuoteBody, RestoreBody, SwapBody } from './schemas.ts';

export type MintQuoteState = 'UNPAID' | 'PAID' | 'ISSUED';
export type MeltQuoteState = 'UNPAID' | 'PENDING' | 'PAID';
export type ProofState = 'UNSPENT' | 'PENDING' | 'SPENT';

interface MintQuote {
  id: string;
  unit: Unit;
  amount: number;
  bolt11: string;
  paymentHash: string;
  state: MintQuoteState;
  expirySec: number;
}

interface MeltQuote {
  id: string;
  unit: Unit;
  amount: number;
  feeReserve: number;
  bolt11: string;
  /** The invoice is one of this mint's own (a mint quote): settled internally, no Lightning fee. */
  internal: boolean;
  state: MeltQuoteState;
  expirySec: number;
  preimage: string | null;
  change?: BlindSignatureJson[];
}

/** What the mint has done in one unit. `outstanding` is the ecash in circulation. */
export interface UnitStats {
  unit: Unit;
  issued: number; // sum of every blind signature
  spent: number; // sum of every proof redeemed
  outstanding: number; // issued - spent
  mintedFromLightning: number; // paid mint quotes that were issued
  meltedToLightning: number; // melt quote amounts paid out
  lightningFees: number; // routing fees paid on melts
  inputFees: number; // NUT-02 input fees collected
  changeKept: number; // overpaid melt fee reserve not returned (too few blank outputs, msat rounding)
}

export interface LedgerOptions {
  lightning: LightningNetwork;
  node: LightningNode;
  units: Unit[];
  inputFeePpk: number;
  /** NUT-02 id version of every keyset this mint makes. */
  keysetIdVersion: KeysetIdVersion;
  clock: Clock;
  quoteExpirySec: number;
  maxAmount: number;
  /** Read on every melt: how long its inputs stay PENDING before Lightning is paid. */
  knobs: { meltDelayMs: number };
  /** Fee reserve for a melt of this many msat; default max(2 sat, 1%) but at least the network's fee. */
  feeReserveMsat?: (amountMsat: number) => number;
}

const newQuoteId = () => randomBytes(16).toString('base64url');
const toMsat = (amount: number, unit: Unit) => (unit === 'sat' ? amount * 1000 : amount);
const fromMsatCeil = (msat: number, unit: Unit) => (unit === 'sat' ? Math.ceil(msat / 1000) : msat);

export class MintLedger {
  readonly keysets = new Map<string, Keyset>();
  private readonly active = new Map<Unit, Keyset>();
  private readonly mintQuotes = new Map<string, MintQuote>();
  private readonly mintQuoteByHash = new Map<string, MintQuote>();
  private readonly meltQuotes = new Map<string, MeltQuote>();
  private readonly spent = new Set<string>(); // Y hex
  private readonly pending = new Set<string>(); // Y hex, inputs of a melt in flight
  /** B_ hex (lower case) -> the blind signature as first issued (DLEQ included), for NUT-09 restore. */
  private readonly signedOutputs = new Map<string, BlindSignatureJson>();
  private readonly unitStats = new Map<Unit, UnitStats>();
  private readonly unsubscribe: () => void;
  private meltGate: Promise<void> | null = null;

  constructor(private readonly opts: LedgerOptions) {
    for (const unit of opts.units) this.rotateKeyset(unit, opts.inputFeePpk);
    this.unsubscribe = opts.lightning.onPaid((invoice) => {
      const quote = this.mintQuoteByHash.get(invoice.paymentHash);
      if (quote && quote.state === 'UNPAID') quote.state = 'PAID';
    });
  }

  close(): void {
    this.unsubscribe();
  }

  get units(): Unit[] {
    return [...this.active.keys()];
  }

  /** A new active keyset for the unit; the previous one stays redeemable but signs nothing. */
  rotateKeyset(unit: Unit, inputFeePpk = this.active.get(unit)?.inputFeePpk ?? this.opts.inputFeePpk): Keyset {
    const keyset = new Keyset(unit, inputFeePpk, this.opts.keysetIdVersion);
    const previous = this.active.get(unit);
    if (previous) previous.active = false;
    if (!this.unitStats.has(unit)) {
      this.unitStats.set(unit, { unit, issued: 0, spent: 0, outstanding: 0, mintedFromLightning: 0, meltedToLightning: 0, lightningFees: 0, inputFees: 0, changeKept: 0 });
    }
    this.keysets.set(keyset.id, keyset);
    this.active.set(unit, keyset);
    return keyset;
  }

  /** Melts arriving from now on keep their inputs PENDING until the returned function is called. */
  holdMelts(): () => void {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    this.meltGate = gate;
    return () => {
      if (this.meltGate === gate) this.meltGate = null;
      release();
    };
  }

  activeKeyset(unit: Unit): Keyset {
    const keyset = this.active.get(unit);
    if (!keyset) throw new MintError(MintErrorCode.UNIT_NOT_SUPPORTED, `unit ${unit} is not supported`);
    return keyset;
  }

  stats(unit: Unit): UnitStats {
    const s = this.unitStats.get(unit);
    if (!s) throw new Error(`the mint has no ${unit} keyset`);
    return { ...s, outstanding: s.issued - s.spent };
  }

  proofState(secret: string): ProofState {
    return this.stateOfY(proofY(secret).toHex(true));
  }

  private stateOfY(Y: string): ProofState {
    if (this.spent.has(Y)) return 'SPENT';
    return this.pending.has(Y) ? 'PENDING' : 'UNSPENT';
  }

  private nowSec(): number {
    return Math.floor(this.opts.clock() / 1000);
  }

  // ---- NUT-04 mint ----

  createMintQuote(body: MintQuoteBody): Record<string, unknown> {
    const unit = this.unitOf(body.unit);
    this.checkLimit(body.amount);
    const id = newQuoteId();
    const invoice = this.opts.node.createInvoice(toMsat(body.amount, unit), body.description ?? `mint quote ${id}`, this.opts.quoteExpirySec);
    const quote: MintQuote = { id, unit, amount: body.amount, bolt11: invoice.bolt11, paymentHash: invoice.paymentHash, state: 'UNPAID', expirySec: Math.floor(invoice.expiresAtMs / 1000) };
    this.mintQuotes.set(id, quote);
    this.mintQuoteByHash.set(quote.paymentHash, quote);
    return mintQuoteJson(quote);
  }

  getMintQuote(id: string): Record<string, unknown> {
    return mintQuoteJson(this.mintQuote(id));
  }

  mintQuoteState(id: string): MintQuoteState | undefined {
    return this.mintQuotes.get(id)?.state;
  }

  private mintQuote(id: string): MintQuote {
    const quote = this.mintQuotes.get(id);
    if (!quote) throw new MintError(MintErrorCode.UNSPECIFIED, 'quote not found');
    return quote;
  }

  mint(body: MintBody): { signatures: BlindSignatureJson[] } {
    const quote = this.mintQuote(body.quote);
    if (quote.state === 'ISSUED') throw new MintError(MintErrorCode.QUOTE_ALREADY_ISSUED, 'quote already issued');
    if (quote.state === 'UNPAID') {
      if (this.nowSec() > quote.expirySec) throw new MintError(MintErrorCode.QUOTE_EXPIRED, 'quote expired');
      throw new MintError(MintErrorCode.QUOTE_NOT_PAID, 'quote not paid');
    }
    const total = this.checkOutputs(body.outputs, quote.unit, false);
    if (total !== quote.amount) throw new MintError(MintErrorCode.TRANSACTION_NOT_BALANCED, `outputs (${total}) do not match the quote amount (${quote.amount})`);
    const signatures = this.signOutputs(body.outputs, quote.unit);
    quote.state = 'ISSUED';
    this.unitStats.get(quote.unit)!.mintedFromLightning += quote.amount;
    return { signatures };
  }

  // ---- NUT-03 swap ----

  swap(body: SwapBody): { signatures: BlindSignatureJson[] } {
    // Nutshell's order: the inputs' signatures and the outputs (keyset active, then "outputs have
    // already been signed before", 11003) are verified first (mint/verification.py
    // verify_inputs_and_outputs), and only then are the inputs found spent (11001) as they are set
    // pending (mint/db/write.py). So a swap re-sent after it went through is answered 11003, and
    // one re-sent after a keyset rotation 12002, never 11001.
    const inputs = this.checkInputs(body.inputs, false);
    const outputTotal = this.checkOutputs(body.outputs, inputs.unit, false);
    if (inputs.total - inputs.fee !== outputTotal) {
      throw new MintError(MintErrorCode.TRANSACTION_NOT_BALANCED, `transaction not balanced: inputs ${inputs.total} - fee ${inputs.fee} != outputs ${outputTotal}`);
    }
    this.checkUnspent(inputs.Ys);
    this.markSpent(inputs.Ys, body.inputs, inputs.unit, inputs.fee);
    return { signatures: this.signOutputs(body.outputs, inputs.unit) };
  }

  // ---- NUT-05 melt ----

  createMeltQuote(body: MeltQuoteBody): Record<string, unknown> {
    const unit = this.unitOf(body.unit);
    const decoded = decodeInvoice(body.request);
    if (decoded.amountMsat === undefined) throw new MintError(MintErrorCode.AMOUNTLESS_INVOICE, 'amountless invoices are not supported');
    const amount = fromMsatCeil(decoded.amountMsat, unit);
    this.checkLimit(amount);
    // Like nutshell's melt_quote: an invoice of one of our own mint quotes is settled
    // internally, with no fee reserve and no Lightning payment.
    const internal = this.mintQuoteByHash.has(decoded.paymentHash);
    const reserveMsat = internal
      ? 0
      : Math.max(this.opts.feeReserveMsat?.(decoded.amountMsat) ?? Math.max(2000, Math.ceil(decoded.amountMsat / 100)), this.opts.lightning.feeFor(decoded.amountMsat));
    const quote: MeltQuote = {
      id: newQuoteId(),
      unit,
      amount,
      feeReserve: fromMsatCeil(reserveMsat, unit),
      bolt11: body.request,
      internal,
      state: 'UNPAID',
      expirySec: this.nowSec() + this.opts.quoteExpirySec,
      preimage: null,
    };
    this.meltQuotes.set(quote.id, quote);
    return meltQuoteJson(quote);
  }

  getMeltQuote(id: string): Record<string, unknown> {
    return meltQuoteJson(this.meltQuote(id));
  }

  meltQuoteState(id: string): MeltQuoteState | undefined {
    return this.meltQuotes.get(id)?.state;
  }

  private meltQuote(id: string): MeltQuote {
    const quote = this.meltQuotes.get(id);
    if (!quote) throw new MintError(MintErrorCode.UNSPECIFIED, 'quote not found');
    return quote;
  }

  async melt(body: MeltBody): Promise<Record<string, unknown>> {
    const quote = this.meltQuote(body.quote);
    if (quote.state === 'PAID') throw new MintError(MintErrorCode.INVOICE_ALREADY_PAID, 'invoice already paid');
    if (quote.state === 'PENDING') throw new MintError(MintErrorCode.QUOTE_PENDING, 'quote is pending');
    if (this.nowSec() > quote.expirySec) throw new MintError(MintErrorCode.QUOTE_EXPIRED, 'quote expired');
    const inputs = this.checkInputs(body.inputs);
    if (inputs.unit !== quote.unit) throw new MintError(MintErrorCode.UNIT_MISMATCH, `inputs are ${inputs.unit}, the quote is ${quote.unit}`);
    const blanks = body.outputs ?? [];
    this.checkOutputs(blanks, quote.unit, true);
    const available = inputs.total - inputs.fee;
    if (available < quote.amount + quote.feeReserve) {
      throw new MintError(MintErrorCode.TRANSACTION_NOT_BALANCED, `inputs ${inputs.total} - fee ${inputs.fee} do not cover amount ${quote.amount} + fee reserve ${quote.feeReserve}`);
    }

    quote.state = 'PENDING';
    for (const Y of inputs.Ys) this.pending.add(Y);
    let payment;
    try {
      if (this.meltGate) await this.meltGate;
      if (this.opts.knobs.meltDelayMs > 0) await new Promise((r) => setTimeout(r, this.opts.knobs.meltDelayMs));
      payment = this.opts.lightning.pay(quote.bolt11, toMsat(quote.feeReserve, quote.unit), quote.internal ? this.opts.node.id : undefined);
    } catch (err) {
      quote.state = 'UNPAID';
      if (err instanceof LightningError && err.code === 'ALREADY_PAID') throw new MintError(MintErrorCode.INVOICE_ALREADY_PAID, 'invoice already paid');
      throw new MintError(MintErrorCode.LIGHTNING_PAYMENT_FAILED, `lightning payment failed: ${(err as Error).message}`);
    } finally {
      for (const Y of inputs.Ys) this.pending.delete(Y);
    }

    const stats = this.unitStats.get(quote.unit)!;
    const feePaid = fromMsatCeil(payment.feeMsat, quote.unit);
    this.markSpent(inputs.Ys, body.inputs, quote.unit, inputs.fee);
    stats.meltedToLightning += quote.amount;
    stats.lightningFees += feePaid;
    const changeTotal = available - quote.amount - feePaid;
    const pieces = splitPowersOfTwo(changeTotal).slice(0, blanks.length);
    const returned = pieces.reduce((a, b) => a + b, 0);
    stats.changeKept += changeTotal - returned;
    quote.state = 'PAID';
    quote.preimage = payment.preimage;
    quote.change = this.signOutputs(pieces.map((amount, i) => ({ ...blanks[i], amount })), quote.unit);
    return meltQuoteJson(quote);
  }

  // ---- NUT-07 checkstate ----

  checkState(body: CheckStateBody): { states: { Y: string; state: ProofState; witness: null }[] } {
    return { states: body.Ys.map((Y) => ({ Y, state: this.stateOfY(Y.toLowerCase()), witness: null })) };
  }

  // ---- NUT-09 restore ----

  /**
   * The signatures already issued on these outputs, as first issued. Outputs never signed are
   * left out; the outputs come back as the wallet sent them, in its order. `promises` is the
   * deprecated name of `signatures` that older wallets read (nutshell still sends both).
   */
  restore(body: RestoreBody): { outputs: BlindedMessageBody[]; signatures: BlindSignatureJson[]; promises: BlindSignatureJson[] } {
    const outputs: BlindedMessageBody[] = [];
    const signatures: BlindSignatureJson[] = [];
    for (const o of body.outputs) {
      const signature = this.signedOutputs.get(o.B_.toLowerCase());
      if (!signature) continue;
      outputs.push(o);
      signatures.push(signature);
    }
    return { outputs, signatures, promises: signatures };
  }

  // ---- shared checks ----

  private unitOf(unit: string): Unit {
    if (!this.active.has(unit as Unit)) throw new MintError(MintErrorCode.UNIT_NOT_SUPPORTED, `unit ${unit} is not supported`);
    return unit as Unit;
  }

  private checkLimit(amount: number): void {
    if (amount < 1 || amount > this.opts.maxAmount) throw new MintError(MintErrorCode.AMOUNT_OUTSIDE_LIMIT, `amount ${amount} outside 1..${this.opts.maxAmount}`);
  }

  private keyset(id: string): Keyset {
    const keyset = this.keysets.get(id);
    if (keyset) return keyset;
    // cashuB tokens carry short ids; a wallet should expand them, but accept a unique prefix.
    const matches = [...this.keysets.values()].filter((k) => k.id.startsWith(id.toLowerCase()));
    if (id.length >= 16 && matches.length === 1) return matches[0];
    throw new MintError(MintErrorCode.KEYSET_UNKNOWN, `keyset ${id} is not known`);
  }

  /** Validate inputs (not yet spent, signatures valid); returns their unit, sum, fee and Ys. */
  private checkInputs(inputs: ProofInput[], unspent = true): { unit: Unit; total: number; fee: number; Ys: string[] } {
    if (inputs.length === 0) throw new MintError(MintErrorCode.TRANSACTION_NOT_BALANCED, 'no inputs');
    const secrets = new Set(inputs.map((p) => p.secret));
    if (secrets.size !== inputs.length) throw new MintError(MintErrorCode.DUPLICATE_INPUTS, 'duplicate inputs provided');
    const keysets = inputs.map((p) => this.keyset(p.id));
    const unit = keysets[0].unit;
    if (keysets.some((k) => k.unit !== unit)) throw new MintError(MintErrorCode.MULTIPLE_UNITS, 'inputs of multiple units');
    const points = inputs.map((p) => proofY(p.secret));
    const Ys = points.map((p) => p.toHex(true));
    if (unspent) this.checkUnspent(Ys);
    let total = 0;
    let feePpk = 0;
    inputs.forEach((p, i) => {
      keysets[i].verify(p, points[i]);
      total += p.amount;
      feePpk += keysets[i].inputFeePpk;
    });
    return { unit, total, fee: Math.ceil(feePpk / 1000), Ys };
  }

  private checkUnspent(Ys: readonly string[]): void {
    for (const Y of Ys) {
      if (this.spent.has(Y)) throw new MintError(MintErrorCode.PROOFS_ALREADY_SPENT, 'Token already spent.');
      if (this.pending.has(Y)) throw new MintError(MintErrorCode.PROOFS_PENDING, 'Token is pending.');
    }
  }

  /**
   * Validate outputs against the active keyset of `unit`; returns their sum (0 for blanks).
   * Nutshell's order (mint/verification.py _verify_outputs): keyset known and active, amounts,
   * duplicates, then "already signed".
   */
  private checkOutputs(outputs: BlindedMessageBody[], unit: Unit, blank: boolean): number {
    const seen = new Set<string>();
    let total = 0;
    for (const o of outputs) {
      const keyset = this.keyset(o.id);
      if (keyset.unit !== unit) throw new MintError(MintErrorCode.UNIT_MISMATCH, `output keyset is ${keyset.unit}, expected ${unit}`);
      if (!keyset.active) throw new MintError(MintErrorCode.KEYSET_INACTIVE, `keyset ${keyset.id} is inactive, cannot sign messages`);
      if (!blank && !keyset.hasAmount(o.amount)) throw new MintError(MintErrorCode.AMOUNT_OUTSIDE_LIMIT, `no key for amount ${o.amount}`);
      const B_ = o.B_.toLowerCase();
      if (seen.has(B_)) throw new MintError(MintErrorCode.DUPLICATE_OUTPUTS, 'duplicate outputs provided');
      seen.add(B_);
      total += o.amount;
    }
    for (const B_ of seen) if (this.signedOutputs.has(B_)) throw new MintError(MintErrorCode.OUTPUTS_ALREADY_SIGNED, 'outputs have already been signed before');
    return blank ? 0 : total;
  }

  private signOutputs(outputs: BlindedMessageBody[], unit: Unit): BlindSignatureJson[] {
    const stats = this.unitStats.get(unit)!;
    return outputs.map((o) => {
      const signature = this.keyset(o.id).sign(o.amount, o.B_);
      this.signedOutputs.set(o.B_.toLowerCase(), signature);
      stats.issued += o.amount;
      return signature;
    });
  }

  private markSpent(Ys: string[], inputs: ProofInput[], unit: Unit, fee: number): void {
    const stats = this.unitStats.get(unit)!;
    Ys.forEach((Y, i) => {
      this.spent.add(Y);
      stats.spent += inputs[i].amount;
    });
    stats.inputFees += fee;
  }
}

/** Split into powers of two, smallest first (NUT-08 change for blank outputs). */
export function splitPowersOfTwo(amount: number): number[] {
  const parts: number[] = [];
  for (let bit = 1; amount > 0; bit *= 2) {
    if (amount % (bit * 2) !== 0) {
      parts.push(bit);
      amount -= bit;
    }
  }
  return parts;
}

function mintQuoteJson(q: MintQuote): Record<string, unknown> {
  return { quote: q.id, request: q.bolt11, amount: q.amount, unit: q.unit, state: q.state, expiry: q.expirySec, paid: q.state !== 'UNPAID' };
}

function meltQuoteJson(q: MeltQuote): Record<string, unknown> {
  return {
    quote: q.id,
    request: q.bolt11,
    amount: q.amount,
    unit: q.unit,
    fee_reserve: q.feeReserve,
    state: q.state,
    expiry: q.expirySec,
    paid: q.state === 'PAID',
    payment_preimage: q.preimage,
    ...(q.change ? { change: q.change } : {}),
  };
}
