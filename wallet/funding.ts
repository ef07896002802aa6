// Funding over Lightning (NUT-04): a mint quote persisted before its invoice is shown, then
// minted exactly once, whatever instruction a crash interrupts.
//
// Exactly-once: the blinded outputs (secrets + blinding factors) are written to the quote row
// BEFORE the mint call and reused on every retry, so the mint can only ever sign one set of
// outputs for the quote and the proofs (unique secrets) can only be stored once, in the same
// transaction as the `funding` ledger row and the quote's 'issued' state.
// The one window left: the mint signed, and the process died before storing the proofs (or
// the answer was lost). The quote then reads ISSUED while we hold no proofs. We ask for the
// signatures again with NUT-09 restore when the mint offers it; otherwise the amount is
// recorded as `funding` + `loss` with the evidence (never silently dropped).
import type { MintPreview, Proof } from '@cashu/cashu-ts';
import type { WalletContext } from './context.ts';
import { assertFundingInvoice } from './bolt11.ts';
import { durableCommit } from './durable.ts';
import { FundingError, MintRejectedError, WalletError } from './errors.ts';
import { deserializeOutputs, mapMintError, NUT_CODE, serializeOutputs } from './mints.ts';
import { sumAmounts } from './store.ts';

export type QuoteState = 'unpaid' | 'paid' | 'minting' | 'issued' | 'expired' | 'lost';

export interface FundingQuote {
  quoteId: string;
  mint: string;
  unit: string;
  amount: number;
  bolt11: string;
  /** Unix seconds, or null if the mint gave none. */
  expiry: number | null;
  state: QuoteState;
  error: string | null;
}

interface QuoteRow {
  quote_id: string; mint: string; unit: string; amount: number; request: string; expiry: number | null;
  state: QuoteState; outputs: string | null; pay_via: string | null; error: string | null;
}

const toQuote = (r: QuoteRow): FundingQuote => ({ quoteId: r.quote_id, mint: r.mint, unit: r.unit, amount: r.amount, bolt11: r.request, expiry: r.expiry, state: r.state, error: r.error });

function getRow(ctx: WalletContext, quoteId: string): QuoteRow {
  const r = ctx.db.prepare('SELECT * FROM wallet_mint_quotes WHERE quote_id = ?').get(quoteId) as QuoteRow | undefined;
  if (!r) throw new FundingError(`unknown funding quote ${quoteId}`);
  return r;
}

function update(ctx: WalletContext, quoteId: string, fields: Partial<Pick<QuoteRow, 'state' | 'outputs' | 'error' | 'pay_via'>>): void {
  const keys = Object.keys(fields) as (keyof typeof fields)[];
  ctx.db.prepare(`UPDATE wallet_mint_quotes SET ${keys.map((k) => `${k} = ?`).join(', ')}, updated_at = ? WHERE quote_id = ?`)
    .run(...keys.map((k) => fields[k] ?? null), ctx.clock(), quoteId);
}

export function getFundingQuote(ctx: WalletContext, quoteId: string): FundingQuote {
  return toQuote(getRow(ctx, quoteId));
}

/** Quotes not yet finished (what recovery and the CLI resume). */
export function openFundingQuotes(ctx: WalletContext): FundingQuote[] {
  return (ctx.db.prepare(`SELECT * FROM wallet_mint_quotes WHERE state IN ('unpaid', 'paid', 'minting') ORDER BY created_at`).all() as QuoteRow[]).map(toQuote);
}

/** Ask the mint for an invoice of `amount` (in `unit`) and persist the quote before returning it. */
export async function createFundingQuote(ctx: WalletContext, amount: number, opts: { mint?: string; unit?: string; payVia?: string } = {}): Promise<FundingQuote> {
  if (!Number.isSafeInteger(amount) || amount <= 0) throw new FundingError(`amount must be a positive integer, got ${amount}`);
  const mint = ctx.mints.assertTrusted(opts.mint ?? ctx.mints.defaultMint());
  const unit = opts.unit ?? 'sat';
  const q = await ctx.mints.call(mint, unit, (w) => w.createMintQuoteBolt11(amount));
  // Never show or pay an invoice for another amount than the one asked for.
  assertFundingInvoice(q.request, amount, unit);
  const now = ctx.clock();
  ctx.db.prepare(`INSERT INTO wallet_mint_quotes (quote_id, mint, unit, amount, request, expiry, state, pay_via, created_at, updated_at)
    VALUES (?,?,?,?,?,?, 'unpaid', ?,?,?)`).run(q.quote, mint, unit, amount, q.request, q.expiry ?? null, opts.payVia ?? null, now, now);
  ctx.logger.info('funding quote created', { quote: quoteTag(q.quote), mint, amount, unit });
  return getFundingQuote(ctx, q.quote);
}

const inflight = new Map<string, Promise<FundingQuote>>();

/**
 * One step: look at the quote at the mint and mint it if paid. Returns the quote's state after
 * the step. Concurrent calls for the same quote share one attempt. MintUnavailableError leaves
 * the quote as it was (call again later).
 */
export function checkFunding(ctx: WalletContext, quoteId: string): Promise<FundingQuote> {
  const running = inflight.get(quoteId);
  if (running) return running;
  const p = step(ctx, quoteId).finally(() => inflight.delete(quoteId));
  inflight.set(quoteId, p);
  return p;
}

async function step(ctx: WalletContext, quoteId: string): Promise<FundingQuote> {
  const r = getRow(ctx, quoteId);
  if (r.state === 'issued' || r.state === 'expired' || r.state === 'lost') return toQuote(r);
  const remote = await ctx.mints.call(r.mint, r.unit, (w) => w.checkMintQuoteBolt11(quoteId));
  const remoteState = String(remote.state);
  if (remoteState === 'UNPAID') {
    const expired = r.expiry !== null && Math.floor(ctx.clock() / 1000) > r.expiry;
    if (expired) update(ctx, quoteId, { state: 'expired', error: 'invoice expired unpaid' });
    return getFundingQuote(ctx, quoteId);
  }
  if (remoteState === 'ISSUED') return recoverIssued(ctx, r);
  if (r.state === 'unpaid') update(ctx, quoteId, { state: 'paid' });
  return mintPaid(ctx, getRow(ctx, quoteId));
}

async function mintPaid(ctx: WalletContext, r: QuoteRow, retried = false): Promise<FundingQuote> {
  const w = retried ? await ctx.mints.refresh(r.mint, r.unit, true) : await ctx.mints.wallet(r.mint, r.unit);
  let preview: MintPreview<{ quote: string }>;
  if (r.outputs) {
    const saved = JSON.parse(r.outputs) as { keysetId: string; data: string };
    const outputData = deserializeOutputs(saved.data);
    preview = { method: 'bolt11', payload: { quote: r.quote_id, outputs: outputData.map((o) => o.blindedMessage) }, outputData, keysetId: saved.keysetId, quote: { quote: r.quote_id } };
  } else {
    preview = await w.prepareMint('bolt11', r.amount, { quote: r.quote_id });
    // On disk before the call (a power cut must not roll it back): the outputs are the only way back to signatures the mint makes.
    await durableCommit(ctx, () => update(ctx, r.quote_id, { state: 'minting', outputs: JSON.stringify({ keysetId: preview.keysetId, data: serializeOutputs(preview.outputData) }) }));
  }
  let proofs: Proof[];
  try {
    proofs = await w.completeMint(preview);
  } catch (raw) {
    const err = mapMintError(r.mint, raw);
    if (!(err instanceof MintRejectedError)) {
      ctx.logger.warn('mint call outcome unknown; the quote will be checked again', { quote: quoteTag(r.quote_id), error: err.message });
      throw err;
    }
    if (err.mintCode === NUT_CODE.QUOTE_ALREADY_ISSUED || err.mintCode === NUT_CODE.OUTPUTS_ALREADY_SIGNED) return recoverIssued(ctx, getRow(ctx, r.quote_id));
    if ((err.mintCode === NUT_CODE.KEYSET_INACTIVE || err.mintCode === NUT_CODE.KEYSET_UNKNOWN) && !retried) {
      // Refused, so unsigned: safe to replace the outputs with ones on the new keyset.
      update(ctx, r.quote_id, { state: 'paid', outputs: null });
      return mintPaid(ctx, getRow(ctx, r.quote_id), true);
    }
    if (err.mintCode === NUT_CODE.QUOTE_NOT_PAID) {
      update(ctx, r.quote_id, { state: 'unpaid' });
      return getFundingQuote(ctx, r.quote_id);
    }
    update(ctx, r.quote_id, { error: err.message });
    throw err;
  }
  return store(ctx, r, proofs, { restored: false });
}

function store(ctx: WalletContext, r: QuoteRow, proofs: Proof[], evidence: Record<string, unknown>): FundingQuote {
  const total = sumAmounts(proofs);
  if (total !== r.amount) throw new WalletError(`mint ${r.mint} signed ${total} ${r.unit} for a quote of ${r.amount}`);
  ctx.db.transaction(() => {
    const cur = getRow(ctx, r.quote_id);
    if (cur.state === 'issued') throw new WalletError(`quote ${r.quote_id} already issued`);
    ctx.store.insertProofs(proofs, r.mint, r.unit, 'unspent', `mint:${r.quote_id}`);
    ctx.ledger.record({ kind: 'funding', mint: r.mint, unit: r.unit, amount: r.amount, ref: r.quote_id, evidence: { invoice: r.request, ...evidence } });
    update(ctx, r.quote_id, { state: 'issued', error: null });
  })();
  ctx.logger.info('funded', { quote: quoteTag(r.quote_id), mint: r.mint, amount: r.amount, unit: r.unit });
  return getFundingQuote(ctx, r.quote_id);
}

/**
 * A quote id is a bearer secret until the quote is minted (no NUT-20 locking): whoever holds
 * it can mint the paid sats. Logs carry only its first characters.
 */
export const quoteTag = (quoteId: string) => `${quoteId.slice(0, 6)}…`;

/** Restore gave back only part of the quote: keep what came back, book the rest as lost with the evidence. */
function storePartial(ctx: WalletContext, r: QuoteRow, restored: Proof[]): FundingQuote {
  const got = sumAmounts(restored);
  if (got > r.amount) throw new WalletError(`mint ${r.mint} restored ${got} ${r.unit} for a quote of ${r.amount}`);
  const evidence = {
    quote: r.quote_id, invoice: r.request, mintState: 'ISSUED', restored: got, missing: r.amount - got,
    reason: 'the mint signed our outputs but the answer never reached the database, and NUT-09 restore returned only part of them',
  };
  ctx.db.transaction(() => {
    const cur = getRow(ctx, r.quote_id);
    if (cur.state === 'issued') throw new WalletError(`quote ${r.quote_id} already issued`);
    ctx.store.insertProofs(restored, r.mint, r.unit, 'unspent', `mint:${r.quote_id}`);
    ctx.ledger.record({ kind: 'funding', mint: r.mint, unit: r.unit, amount: r.amount, ref: r.quote_id, evidence: { invoice: r.request, restored: true } });
    ctx.ledger.record({ kind: 'loss', mint: r.mint, unit: r.unit, amount: got - r.amount, ref: r.quote_id, evidence });
    update(ctx, r.quote_id, { state: 'issued', error: evidence.reason });
  })();
  ctx.logger.error('funding partly lost', { quote: quoteTag(r.quote_id), mint: r.mint, restored: got, missing: r.amount - got, unit: r.unit });
  return getFundingQuote(ctx, r.quote_id);
}

/** The mint says ISSUED but we hold no proofs for the quote: restore (NUT-09) or record the loss. */
async function recoverIssued(ctx: WalletContext, r: QuoteRow): Promise<FundingQuote> {
  if (r.state === 'issued') return toQuote(r);
  if (r.outputs) {
    const saved = JSON.parse(r.outputs) as { keysetId: string; data: string };
    const restored = await ctx.mints.restore(r.mint, r.unit, deserializeOutputs(saved.data));
    if (restored && sumAmounts(restored) === r.amount) return store(ctx, r, restored, { restored: true });
    if (restored && restored.length > 0) return storePartial(ctx, r, restored);
  }
  const evidence = {
    quote: r.quote_id, invoice: r.request, mintState: 'ISSUED', outputsPersisted: r.outputs !== null,
    reason: r.outputs ? 'the mint signed our outputs but the answer never reached the database, and the mint offers no NUT-09 restore' : 'issued without our outputs',
  };
  ctx.db.transaction(() => {
    ctx.ledger.record({ kind: 'funding', mint: r.mint, unit: r.unit, amount: r.amount, ref: r.quote_id, evidence: { invoice: r.request } });
    ctx.ledger.record({ kind: 'loss', mint: r.mint, unit: r.unit, amount: -r.amount, ref: r.quote_id, evidence });
    update(ctx, r.quote_id, { state: 'lost', error: evidence.reason });
  })();
  ctx.logger.error('funding lost', { ...evidence, quote: quoteTag(r.quote_id) });
  return getFundingQuote(ctx, r.quote_id);
}

export interface WaitOptions {
  timeoutMs?: number;
  pollMs?: number;
  signal?: AbortSignal;
}

/** Poll until the quote is issued, expired or lost, or the timeout passes (then FundingError; the quote stays resumable). */
export async function waitForFunding(ctx: WalletContext, quoteId: string, opts: WaitOptions = {}): Promise<FundingQuote> {
  const deadline = performance.now() + (opts.timeoutMs ?? 10 * 60_000);
  const pollMs = opts.pollMs ?? 1000;
  for (;;) {
    let q: FundingQuote;
    try {
      q = await checkFunding(ctx, quoteId);
    } catch (err) {
      if (err instanceof MintRejectedError) throw err;
      q = getFundingQuote(ctx, quoteId); // mint unreachable: keep waiting
    }
    if (q.state === 'issued' || q.state === 'expired' || q.state === 'lost') return q;
    if (opts.signal?.aborted) throw new FundingError('stopped waiting for the payment; the quote resumes on the next start');
    if (performance.now() >= deadline) throw new FundingError(`invoice not paid within ${Math.round((opts.timeoutMs ?? 600_000) / 1000)} s; the quote ${quoteId} resumes on the next start`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** On start: one step for every unfinished quote. */
export async function resumeFunding(ctx: WalletContext): Promise<{ quoteId: string; state: QuoteState; error?: string }[]> {
  const out = [];
  for (const q of openFundingQuotes(ctx)) {
    try {
      const after = await checkFunding(ctx, q.quoteId);
      out.push({ quoteId: q.quoteId, state: after.state });
    } catch (err) {
      out.push({ quoteId: q.quoteId, state: q.state, error: (err as Error).message });
    }
  }
  return out;
}

