// Receiving a token is a swap at the mint (NUT-03) that survives a crash at any instruction:
//   1. one transaction: a wallet_swaps row with the inputs and our blinded outputs
//      (secrets + blinding factors);
//   2. the swap call;
//   3. one transaction: outputs stored, ledger rows, row 'done'.
// If the process dies in 2, resumeSwaps() asks the mint (NUT-07): inputs unspent -> the swap
// never happened; spent -> our outputs were signed: recover them with NUT-09 restore if the
// mint offers it, else record a `loss` with the evidence. Nothing is dropped silently.
import { Amount, type Proof, type SwapPreview, type Wallet } from '@cashu/cashu-ts';
import type { WalletContext } from './context.ts';
import { newId } from './context.ts';
import { InvalidTokenError, MintRejectedError, WalletError } from './errors.ts';
import type { LedgerKind } from './ledger.ts';
import { deserializeOutputs, mapMintError, NUT_CODE, serializeOutputs } from './mints.ts';
import { amountOf, sumAmounts, type StoredProof } from './store.ts';

/**
 * This module owns wallet_swaps rows with purpose 'receive' (the payment path's change, refund,
 * split and reclaim swaps live in wallet/swaps.ts and are resumed there).
 */
export type ForeignPurpose = 'receive';
type SwapPurpose = ForeignPurpose;

const CREDIT: Record<ForeignPurpose, LedgerKind> = { receive: 'receive' };

export interface SwapResult {
  swapId: string;
  mint: string;
  unit: string;
  /** Face value of the inputs. */
  inputAmount: number;
  /** What the mint kept (NUT-02 input fee). */
  fee: number;
  proofs: StoredProof[];
}

interface SwapRow {
  id: string; mint: string; unit: string; purpose: SwapPurpose; ref: string | null; state: string;
  foreign_inputs: string | null; inputs_amount: number; fee: number; outputs: string | null; created_at: number;
}

interface StoredOutputs { keysetId: string; keep: string }

/** Ids of receive swaps being run by this process right now (by swapForeign or a recovery pass). */
const inFlight = new Set<string>();

const serializeProofs = (proofs: Proof[]) => JSON.stringify(proofs.map((p) => ({ ...p, amount: amountOf(p) })));

/**
 * Swap proofs that are not ours yet (a received token) for fresh ones. Credits the face value
 * (`receive`, ref = `ref` or the swap id) and debits the mint fee (`mint_fee`). Throws InvalidTokenError (bad DLEQ, unknown keyset), MintRejectedError
 * (e.g. already spent: code 11001; nothing happened) or MintUnavailableError (outcome unknown:
 * the swap stays pending and resumeSwaps settles it).
 */
export async function swapForeign(ctx: WalletContext, a: { mint: string; unit: string; proofs: Proof[]; purpose: ForeignPurpose; ref?: string }): Promise<SwapResult> {
  const mint = ctx.mints.assertTrusted(a.mint);
  for (let attempt = 0; ; attempt++) {
    const w = await walletKnowing(ctx, mint, a.unit, a.proofs.map((p) => p.id), attempt > 0);
    let preview: SwapPreview;
    try {
      preview = await w.prepareSwapToReceive(a.proofs);
    } catch (err) {
      throw new InvalidTokenError(`token refused before the swap: ${(err as Error).message}`);
    }
    const id = newId('swap');
    persist(ctx, { id, mint, unit: a.unit, purpose: a.purpose, ref: a.ref ?? null, foreign: preview.inputs, inputs: sumAmounts(preview.inputs), fee: amountOf({ amount: preview.fees }), preview });
    inFlight.add(id);
    try {
      return await complete(ctx, id, w, preview);
    } catch (err) {
      if (err instanceof MintRejectedError && isKeysetCode(err.mintCode) && attempt === 0) continue;
      throw err;
    } finally {
      inFlight.delete(id);
    }
  }
}

function isKeysetCode(code: number | undefined): boolean {
  return code === NUT_CODE.KEYSET_INACTIVE || code === NUT_CODE.KEYSET_UNKNOWN;
}

/** A wallet whose keychain knows these keyset ids (reloading keys once after a rotation). */
async function walletKnowing(ctx: WalletContext, mint: string, unit: string, ids: string[], force: boolean): Promise<Wallet> {
  let w = force ? await ctx.mints.refresh(mint, unit, true) : await ctx.mints.wallet(mint, unit);
  const known = (x: Wallet) => ids.every((id) => { try { x.keyChain.getKeyset(id); return true; } catch { return false; } });
  if (!known(w)) w = await ctx.mints.refresh(mint, unit, true);
  if (!known(w)) throw new InvalidTokenError(`token uses a keyset the mint ${mint} does not list for unit ${unit}`);
  // Keys of inactive (rotated) keysets are not loaded by default; DLEQ checks need them.
  for (const id of new Set(ids)) {
    try {
      await w.keyChain.ensureKeysetKeys(id);
    } catch (err) {
      throw mapMintError(mint, err);
    }
  }
  return w;
}

function persist(ctx: WalletContext, s: { id: string; mint: string; unit: string; purpose: SwapPurpose; ref: string | null; foreign: Proof[]; inputs: number; fee: number; preview: SwapPreview }): void {
  const now = ctx.clock();
  const outputs: StoredOutputs = { keysetId: s.preview.keysetId, keep: serializeOutputs(s.preview.keepOutputs ?? []) };
  ctx.db.prepare(`INSERT INTO wallet_swaps (id, mint, unit, purpose, ref, state, foreign_inputs, inputs_amount, fee, outputs, created_at, updated_at)
      VALUES (?,?,?,?,?, 'prepared', ?,?,?,?,?,?)`).run(s.id, s.mint, s.unit, s.purpose, s.ref, serializeProofs(s.foreign), s.inputs, s.fee, JSON.stringify(outputs), now, now);
}

function row(ctx: WalletContext, id: string): SwapRow {
  return ctx.db.prepare('SELECT * FROM wallet_swaps WHERE id = ?').get(id) as SwapRow;
}

function setState(ctx: WalletContext, id: string, state: 'done' | 'failed' | 'lost', error: string | null): void {
  ctx.db.prepare('UPDATE wallet_swaps SET state = ?, error = ?, updated_at = ? WHERE id = ?').run(state, error, ctx.clock(), id);
}

async function complete(ctx: WalletContext, id: string, w: Wallet, preview: SwapPreview): Promise<SwapResult> {
  let res: { keep: Proof[]; send: Proof[] };
  try {
    res = await w.completeSwap(preview);
  } catch (raw) {
    const err = mapMintError(row(ctx, id).mint, raw);
    if (err instanceof MintRejectedError) {
      setState(ctx, id, 'failed', err.message); // the mint refused: nothing happened
    } else {
      ctx.logger.warn('swap outcome unknown; will resolve with the mint later', { swap: id, error: err.message });
    }
    throw err;
  }
  return settle(ctx, id, [...res.keep, ...res.send]);
}

/** Store the outputs and write the ledger rows; the swap is done. */
function settle(ctx: WalletContext, id: string, proofs: Proof[], extraEvidence?: unknown): SwapResult {
  const r = row(ctx, id);
  const received = sumAmounts(proofs);
  const fee = r.inputs_amount - received;
  let result!: SwapResult;
  ctx.db.transaction(() => {
    if (r.state !== 'prepared') throw new WalletError(`swap ${id} is ${r.state}, not prepared`);
    const stored = ctx.store.insertProofs(proofs, r.mint, r.unit, 'unspent', `swap:${id}`);
    ctx.ledger.record({ kind: CREDIT[r.purpose], mint: r.mint, unit: r.unit, amount: r.inputs_amount, ref: r.ref ?? id, evidence: { swap: id, ...(extraEvidence ? { recovery: extraEvidence } : {}) } });
    if (fee < 0) throw new WalletError(`swap ${id}: outputs ${received} exceed inputs ${r.inputs_amount}`);
    ctx.ledger.record({ kind: 'mint_fee', mint: r.mint, unit: r.unit, amount: -fee, ref: id, evidence: { swap: id, purpose: r.purpose, inputs: r.inputs_amount, outputs: received } });
    setState(ctx, id, 'done', null);
    result = { swapId: id, mint: r.mint, unit: r.unit, inputAmount: r.inputs_amount, fee, proofs: stored };
  })();
  return result;
}

export interface SwapRecovery {
  swapId: string;
  outcome: 'completed' | 'restored' | 'lost' | 'retry_later';
  detail?: string;
}

/** Resolve every receive swap left 'prepared' by a crash or an unknown outcome. Idempotent. */
export async function resumeSwaps(ctx: WalletContext): Promise<SwapRecovery[]> {
  const rows = ctx.db.prepare(`SELECT * FROM wallet_swaps WHERE state = 'prepared' AND purpose = 'receive' ORDER BY created_at`).all() as SwapRow[];
  const out: SwapRecovery[] = [];
  for (const r of rows) {
    // A swap this process is running right now (a `wallet receive` in progress, or another
    // recovery pass) is its caller's to finish: resuming it too would race on the same row.
    if (inFlight.has(r.id)) continue;
    inFlight.add(r.id);
    try {
      out.push(await resumeOne(ctx, r));
    } catch (err) {
      out.push({ swapId: r.id, outcome: 'retry_later', detail: (err as Error).message });
    } finally {
      inFlight.delete(r.id);
    }
  }
  return out;
}

async function resumeOne(ctx: WalletContext, r: SwapRow): Promise<SwapRecovery> {
  const inputs = JSON.parse(r.foreign_inputs ?? '[]') as Proof[];
  const outs = JSON.parse(r.outputs ?? '{}') as StoredOutputs;
  const keepOut = deserializeOutputs(outs.keep);
  const states = await ctx.mints.checkStates(r.mint, r.unit, inputs);
  if (states.some((s) => s === 'PENDING')) return { swapId: r.id, outcome: 'retry_later', detail: 'inputs pending at the mint' };
  if (states.every((s) => s === 'UNSPENT')) {
    // The swap never happened: send it again with the same outputs (none were signed).
    const w = await ctx.mints.wallet(r.mint, r.unit);
    const preview: SwapPreview = { amount: Amount.from(r.inputs_amount - r.fee), fees: Amount.from(r.fee), keysetId: outs.keysetId, inputs, keepOutputs: keepOut };
    await complete(ctx, r.id, w, preview);
    return { swapId: r.id, outcome: 'completed' };
  }
  // Inputs spent: our outputs were most likely signed. Ask for them back.
  const restored = await ctx.mints.restore(r.mint, r.unit, keepOut);
  if (restored && restored.length > 0) {
    settle(ctx, r.id, restored, { restored: restored.length });
    return { swapId: r.id, outcome: 'restored' };
  }
  const evidence = {
    swap: r.id, purpose: r.purpose, inputs: inputs.length, states,
    reason: restored ? 'inputs spent; the mint restored none of our outputs' : 'inputs spent (by our unanswered swap, or the sender spent the token first); the mint offers no NUT-09 restore to tell or recover',
  };
  ctx.db.transaction(() => {
    if (row(ctx, r.id).state !== 'prepared') throw new WalletError(`swap ${r.id} was settled meanwhile`);
    ctx.ledger.record({ kind: CREDIT[r.purpose], mint: r.mint, unit: r.unit, amount: r.inputs_amount, ref: r.ref ?? r.id, evidence: { swap: r.id } });
    ctx.ledger.record({ kind: 'loss', mint: r.mint, unit: r.unit, amount: -r.inputs_amount, ref: r.id, evidence });
    setState(ctx, r.id, 'lost', evidence.reason);
  })();
  ctx.logger.error('received token lost', evidence);
  return { swapId: r.id, outcome: 'lost', detail: evidence.reason };
}
