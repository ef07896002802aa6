// Withdrawals over Lightning (NUT-05 melt) with NUT-08 change for the unused fee reserve.
// The melt row (with the blank change outputs) and inputs -> pending(melt, quote) are written in
// one transaction BEFORE the melt call; the result is settled in another. If the process dies
// in between, resumeMelts() asks the mint for the quote: PAID -> spent, change rebuilt from the
// persisted blanks and the quote's signatures; UNPAID -> inputs back to unspent.
import { Amount, type MeltPreview, type MeltQuoteBolt11Response, type Proof, type Wallet } from '@cashu/cashu-ts';
import type { WalletContext } from './context.ts';
import { assertMeltQuote, parseBolt11 } from './bolt11.ts';
import { durableCommit } from './durable.ts';
import { InsufficientFundsError, InvoiceError, MintRejectedError, WithdrawError } from './errors.ts';
import { deserializeOutputs, mapMintError, NUT_CODE, serializeOutputs } from './mints.ts';
import { amountOf, sumAmounts, toCashuProof } from './store.ts';

export interface WithdrawResult {
  quoteId: string;
  mint: string;
  unit: string;
  state: 'paid' | 'pending' | 'failed';
  /** Invoice amount. */
  amount: number;
  feeReserve: number;
  inputFee: number;
  /** Lightning fee the mint actually kept (inputs - input fee - amount - change). */
  lightningFee: number;
  change: number;
  preimage: string | null;
}

interface MeltRow {
  quote_id: string; mint: string; unit: string; request: string; amount: number; fee_reserve: number;
  input_fee: number; inputs_amount: number; state: string; outputs: string | null; preimage: string | null;
}

const getRow = (ctx: WalletContext, id: string) => ctx.db.prepare('SELECT * FROM wallet_melts WHERE quote_id = ?').get(id) as MeltRow;
const setState = (ctx: WalletContext, id: string, state: string, extra: { error?: string | null; preimage?: string | null } = {}) =>
  ctx.db.prepare('UPDATE wallet_melts SET state = ?, error = ?, preimage = COALESCE(?, preimage), updated_at = ? WHERE quote_id = ?')
    .run(state, extra.error ?? null, extra.preimage ?? null, ctx.clock(), id);

/** The trusted mint with the largest unspent balance in `unit`. */
function richestMint(ctx: WalletContext, unit: string): string {
  const rows = ctx.store.balances().filter((b) => b.unit === unit && ctx.mints.isTrusted(b.mint)).sort((a, b) => b.unspent - a.unspent);
  return rows[0]?.mint ?? ctx.mints.defaultMint();
}

/** Pay a BOLT11 invoice from the wallet. */
export async function withdraw(ctx: WalletContext, bolt11: string, opts: { mint?: string; unit?: string } = {}): Promise<WithdrawResult> {
  const unit = opts.unit ?? 'sat';
  const mint = ctx.mints.assertTrusted(opts.mint ?? richestMint(ctx, unit));
  // Read before any mint call: junk and amountless invoices stop here, and the quote must be for what the invoice pays.
  const invoice = parseBolt11(bolt11);
  if (invoice.amountMsat === null) throw new InvoiceError('the invoice has no amount: ask for one with an amount');
  const quote = await ctx.mints.call(mint, unit, (w) => w.createMeltQuoteBolt11(bolt11.trim()));
  assertMeltQuote(invoice, amountOf(quote), unit);
  for (let attempt = 0; ; attempt++) {
    const w = attempt ? await ctx.mints.refresh(mint, unit, true) : await ctx.mints.wallet(mint, unit);
    try {
      return await meltOnce(ctx, w, mint, unit, quote);
    } catch (err) {
      // Our change outputs were on a keyset the mint rotated away: it refused, nothing happened.
      const code = (err as { cause?: MintRejectedError }).cause?.mintCode;
      if (attempt === 0 && (code === NUT_CODE.KEYSET_INACTIVE || code === NUT_CODE.KEYSET_UNKNOWN)) continue;
      throw err;
    }
  }
}

async function meltOnce(ctx: WalletContext, w: Wallet, mint: string, unit: string, quote: MeltQuoteBolt11Response): Promise<WithdrawResult> {
  const amount = amountOf(quote);
  const feeReserve = amountOf({ amount: quote.fee_reserve });
  const available = ctx.store.selectUnspent(mint, unit).map(toCashuProof);
  const have = sumAmounts(available);
  let selected: Proof[];
  try {
    selected = w.selectProofsToSend(available, amount + feeReserve, true).send;
  } catch {
    selected = [];
  }
  const inputFee = selected.length ? amountOf({ amount: w.getFeesForProofs(selected) }) : 0;
  if (selected.length === 0 || sumAmounts(selected) - inputFee < amount + feeReserve) {
    throw new InsufficientFundsError(amount + feeReserve + inputFee, have, unit, mint);
  }
  const preview = await w.prepareMelt('bolt11', quote, selected);
  const inputsAmount = sumAmounts(selected);
  const now = ctx.clock();
  // On disk before the call (a power cut must not roll it back): the change outputs and the inputs' reason.
  await durableCommit(ctx, () => {
    ctx.db.prepare(`INSERT INTO wallet_melts (quote_id, mint, unit, request, amount, fee_reserve, input_fee, inputs_amount, state, outputs, created_at, updated_at)
      VALUES (?,?,?,?,?,?,?,?, 'pending', ?,?,?)
      ON CONFLICT (quote_id) DO UPDATE SET state = 'pending', input_fee = excluded.input_fee, inputs_amount = excluded.inputs_amount,
        outputs = excluded.outputs, error = NULL, updated_at = excluded.updated_at`).run(quote.quote, mint, unit, quote.request, amount, feeReserve, inputFee, inputsAmount,
      JSON.stringify({ keysetId: preview.keysetId, data: serializeOutputs(preview.outputData) }), now, now);
    ctx.store.movePending(selected.map((p) => p.secret), 'melt', quote.quote);
  });
  ctx.logger.info('withdrawing', { quote: quote.quote, mint, amount, feeReserve, inputs: inputsAmount });

  let res: { quote: MeltQuoteBolt11Response; change: Proof[] };
  try {
    res = await w.completeMelt(preview as MeltPreview<MeltQuoteBolt11Response>);
  } catch (raw) {
    const err = mapMintError(mint, raw);
    if (err instanceof MintRejectedError) {
      ctx.db.transaction(() => {
        ctx.store.releasePending(quote.quote);
        setState(ctx, quote.quote, 'failed', { error: err.message });
      })();
      throw new WithdrawError(`withdrawal failed, nothing was spent: ${err.message}`, { cause: err });
    }
    ctx.logger.warn('melt outcome unknown; it will be resolved with the mint', { quote: quote.quote, error: err.message });
    return result(ctx, quote.quote);
  }
  const state = String(res.quote.state);
  if (state === 'PAID') settle(ctx, quote.quote, res.change, res.quote.payment_preimage ?? null);
  else if (state === 'UNPAID') {
    ctx.db.transaction(() => { ctx.store.releasePending(quote.quote); setState(ctx, quote.quote, 'failed', { error: 'the mint did not pay the invoice' }); })();
  }
  return result(ctx, quote.quote);
}

/**
 * What a paid melt cost beyond the invoice, from what certainly happened: inputs out, change in.
 * The input fee booked is at most what the mint kept; a mint that returns more change than
 * inputs - input fee - amount leaves a surplus (credited), never a negative fee.
 */
export function meltFees(m: { inputs: number; inputFee: number; amount: number; change: number }): { inputFee: number; lightningFee: number; surplus: number } {
  const kept = m.inputs - m.change - m.amount;
  if (kept < 0) return { inputFee: 0, lightningFee: 0, surplus: -kept };
  const inputFee = Math.min(m.inputFee, kept);
  return { inputFee, lightningFee: kept - inputFee, surplus: 0 };
}

function settle(ctx: WalletContext, quoteId: string, change: Proof[], preimage: string | null): void {
  const r = getRow(ctx, quoteId);
  if (r.state !== 'pending') return;
  const changeAmount = sumAmounts(change);
  const fees = meltFees({ inputs: r.inputs_amount, inputFee: r.input_fee, amount: r.amount, change: changeAmount });
  ctx.db.transaction(() => {
    ctx.store.markSpent(quoteId);
    ctx.store.insertProofs(change, r.mint, r.unit, 'unspent', `melt:${quoteId}`);
    const evidence = { invoice: r.request, preimage, inputs: r.inputs_amount, change: changeAmount };
    ctx.ledger.record({ kind: 'withdrawal', mint: r.mint, unit: r.unit, amount: -r.amount, ref: quoteId, evidence });
    ctx.ledger.record({ kind: 'mint_fee', mint: r.mint, unit: r.unit, amount: -fees.inputFee, ref: quoteId, evidence: { booked: r.input_fee } });
    ctx.ledger.record({ kind: 'withdrawal_fee', mint: r.mint, unit: r.unit, amount: -fees.lightningFee, ref: quoteId, evidence: { feeReserve: r.fee_reserve } });
    ctx.ledger.record({ kind: 'receive', mint: r.mint, unit: r.unit, amount: fees.surplus, ref: quoteId, evidence: { reason: 'melt change above inputs - input fee - amount', ...evidence } });
    setState(ctx, quoteId, 'paid', { preimage });
  })();
  ctx.logger.info('withdrawn', { quote: quoteId, amount: r.amount, lightningFee: fees.lightningFee, change: changeAmount });
}

function result(ctx: WalletContext, quoteId: string): WithdrawResult {
  const r = getRow(ctx, quoteId);
  const changeAmount = r.state === 'paid'
    ? (ctx.db.prepare(`SELECT COALESCE(SUM(amount), 0) AS s FROM wallet_proofs WHERE source = ?`).get(`melt:${quoteId}`) as { s: number }).s
    : 0;
  const state = r.state === 'paid' ? 'paid' : r.state === 'pending' ? 'pending' : 'failed';
  const fees = state === 'paid' ? meltFees({ inputs: r.inputs_amount, inputFee: r.input_fee, amount: r.amount, change: changeAmount }) : { inputFee: r.input_fee, lightningFee: 0 };
  return {
    quoteId, mint: r.mint, unit: r.unit, state, amount: r.amount, feeReserve: r.fee_reserve, inputFee: fees.inputFee,
    lightningFee: fees.lightningFee, change: changeAmount, preimage: r.preimage,
  };
}

/** On start (and periodically): settle every melt left pending. */
export async function resumeMelts(ctx: WalletContext): Promise<WithdrawResult[]> {
  const rows = ctx.db.prepare(`SELECT * FROM wallet_melts WHERE state = 'pending' ORDER BY created_at`).all() as MeltRow[];
  const out: WithdrawResult[] = [];
  for (const r of rows) {
    try {
      const q = await ctx.mints.call(r.mint, r.unit, (w) => w.checkMeltQuoteBolt11(r.quote_id));
      const state = String(q.state);
      if (state === 'PAID') {
        const saved = JSON.parse(r.outputs ?? '{"data":"[]"}') as { data: string };
        const w = await ctx.mints.wallet(r.mint, r.unit);
        const change = w.createMeltChangeProofs(deserializeOutputs(saved.data), q.change ?? []);
        settle(ctx, r.quote_id, change, q.payment_preimage ?? null);
      } else if (state === 'UNPAID') {
        // Double-check the inputs: unspent -> the melt never happened.
        const inputs = ctx.store.pendingOf(r.quote_id).map(toCashuProof);
        const states = await ctx.mints.checkStates(r.mint, r.unit, inputs);
        if (states.every((s) => s === 'UNSPENT')) {
          ctx.db.transaction(() => { ctx.store.releasePending(r.quote_id); setState(ctx, r.quote_id, 'failed', { error: 'not paid; inputs released' }); })();
        }
      }
    } catch (err) {
      ctx.logger.warn('melt still unresolved', { quote: r.quote_id, error: (err as Error).message });
    }
    out.push(result(ctx, r.quote_id));
  }
  return out;
}

/** Melt quote for an invoice without paying it (fee preview). */
export async function quoteWithdrawal(ctx: WalletContext, bolt11: string, opts: { mint?: string; unit?: string } = {}): Promise<{ mint: string; amount: number; feeReserve: number }> {
  const unit = opts.unit ?? 'sat';
  const mint = ctx.mints.assertTrusted(opts.mint ?? richestMint(ctx, unit));
  const invoice = parseBolt11(bolt11);
  const q = await ctx.mints.call(mint, unit, (w) => w.createMeltQuoteBolt11(bolt11.trim()));
  assertMeltQuote(invoice, amountOf(q), unit);
  return { mint, amount: amountOf(q), feeReserve: Amount.from(q.fee_reserve).toNumber() };
}
