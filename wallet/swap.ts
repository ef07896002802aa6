// Swaps at the mint (NUT-03) that survive a crash at any instruction:
//   1. one transaction: a wallet_swaps row with the inputs and our blinded outputs
//      (secrets + blinding factors), own inputs moved unspent -> pending(swap, id);
//   2. the swap call;
//   3. one transaction: outputs stored, own inputs spent, ledger rows, row 'done'.
// If the process dies in 2, resumeSwaps() asks the mint (NUT-07): inputs unspent -> the swap
// never happened; spent -> our outputs were signed: recover them with NUT-09 restore if the
// mint offers it, else record a `loss` with the evidence. Nothing is dropped silently.
import { Amount, type Proof, type SwapPreview, type Wallet } from '@cashu/cashu-ts';
import type { WalletContext } from './context.ts';
import { newId } from './context.ts';
import { InvalidTokenError, MintRejectedError, WalletError } from './errors.ts';
import type { LedgerKind } from './ledger.ts';
import { deserializeOutputs, mapMintError, NUT_CODE, serializeOutputs } from './mints.ts';
import { amountOf, sumAmounts, type InsertState, type StoredProof, toCashuProof } from './store.ts';

export type ForeignPurpose = 'receive' | 'change' | 'refund';
export type OwnPurpose = 'split' | 'reclaim';
export type SwapPurpose = ForeignPurpose | OwnPurpose;

const CREDIT: Record<ForeignPurpose, LedgerKind> = { receive: 'receive', change: 'change_received', refund: 'refund' };

export interface SwapResult {
  swapId: string;
  mint: string;
  unit: string;
  /** Face value of the inputs. */
  inputAmount: number;
  /** What the mint kept (NUT-02 input fee). */
  fee: number;
  keep: StoredProof[];
  send: StoredProof[];
}

interface SwapRow {
  id: string; mint: string; unit: string; purpose: SwapPurpose; ref: string | null; state: string;
  foreign_inputs: string | null; inputs_amount: number; fee: number; outputs: string | null; created_at: number;
}

interface StoredOutputs { keysetId: string; keep: string; send: string; sendState?: InsertState }

const serializeProofs = (proofs: Proof[]) => JSON.stringify(proofs.map((p) => ({ ...p, amount: amountOf(p) })));

/**
 * Swap proofs that are not ours yet (a received token, a provider's change or refund) for
 * fresh ones. Credits the face value (receive / change_received / refund, ref = `ref`) and
 * debits the mint fee. Throws InvalidTokenError (bad DLEQ, unknown keyset), MintRejectedError
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
    try {
      return await complete(ctx, id, w, preview);
    } catch (err) {
      if (err instanceof MintRejectedError && isKeysetCode(err.mintCode) && attempt === 0) continue;
      throw err;
    }
  }
}

/**
 * Swap our own unspent proofs (by secret), e.g. to split for an exact amount. With
 * `sendAmount`, outputs of exactly that amount come back in `send`, stored in `sendState`
 * (e.g. { kind: 'request', ref: requestId }); the rest in `keep` (unspent).
 * Debits the mint fee. On a refusal the inputs go back to unspent.
 */
export async function swapOwn(ctx: WalletContext, a: { mint: string; unit: string; secrets: string[]; purpose: OwnPurpose; ref?: string; sendAmount?: number; sendState?: InsertState; includeFees?: boolean }): Promise<SwapResult> {
  const mint = ctx.mints.assertTrusted(a.mint);
  for (let attempt = 0; ; attempt++) {
    const proofs = a.secrets.map((s) => ctx.store.get(s)).filter((p): p is StoredProof => p !== undefined && p.state === 'unspent' && p.mint === mint && p.unit === a.unit);
    if (proofs.length !== a.secrets.length) throw new WalletError('swapOwn: some proofs are not unspent proofs of this mint and unit');
    const inputs = proofs.map(toCashuProof);
    const w = await walletKnowing(ctx, mint, a.unit, inputs.map((p) => p.id), attempt > 0);
    const preview = a.sendAmount === undefined
      ? await w.prepareSwapToReceive(inputs)
      : await w.prepareSwapToSend(a.sendAmount, inputs, { includeFees: a.includeFees ?? false });
    if (preview.unselectedProofs?.length) throw new WalletError('swapOwn: cashu-ts left inputs unselected');
    const id = newId('swap');
    persist(ctx, { id, mint, unit: a.unit, purpose: a.purpose, ref: a.ref ?? null, foreign: null, inputs: sumAmounts(inputs), fee: amountOf({ amount: preview.fees }), preview, ownSecrets: a.secrets, sendState: a.sendState });
    try {
      return await complete(ctx, id, w, preview);
    } catch (err) {
      if (err instanceof MintRejectedError && isKeysetCode(err.mintCode) && attempt === 0) continue;
      throw err;
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
  return w;
}

function persist(ctx: WalletContext, s: { id: string; mint: string; unit: string; purpose: SwapPurpose; ref: string | null; foreign: Proof[] | null; inputs: number; fee: number; preview: SwapPreview; ownSecrets?: string[]; sendState?: InsertState }): void {
  const now = ctx.clock();
  const outputs: StoredOutputs = { keysetId: s.preview.keysetId, keep: serializeOutputs(s.preview.keepOutputs ?? []), send: serializeOutputs(s.preview.sendOutputs ?? []), sendState: s.sendState };
  ctx.db.transaction(() => {
    ctx.db.prepare(`INSERT INTO wallet_swaps (id, mint, unit, purpose, ref, state, foreign_inputs, inputs_amount, fee, outputs, created_at, updated_at)
      VALUES (?,?,?,?,?, 'prepared', ?,?,?,?,?,?)`).run(s.id, s.mint, s.unit, s.purpose, s.ref, s.foreign ? serializeProofs(s.foreign) : null, s.inputs, s.fee, JSON.stringify(outputs), now, now);
    if (s.ownSecrets) ctx.store.movePending(s.ownSecrets, 'swap', s.id);
  })();
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
      // The mint refused: nothing happened. Own inputs go back to unspent.
      ctx.db.transaction(() => {
        ctx.store.releasePending(id);
        setState(ctx, id, 'failed', err.message);
      })();
    } else {
      ctx.logger.warn('swap outcome unknown; will resolve with the mint later', { swap: id, error: err.message });
    }
    throw err;
  }
  return settle(ctx, id, res.keep, res.send);
}

/** Store the outputs and write the ledger rows; the swap is done. */
function settle(ctx: WalletContext, id: string, keep: Proof[], send: Proof[], extraEvidence?: unknown): SwapResult {
  const r = row(ctx, id);
  const outs = JSON.parse(r.outputs ?? '{}') as StoredOutputs;
  const received = sumAmounts(keep) + sumAmounts(send);
  const fee = r.inputs_amount - received;
  let result!: SwapResult;
  ctx.db.transaction(() => {
    if (r.state !== 'prepared') throw new WalletError(`swap ${id} is ${r.state}, not prepared`);
    if (!r.foreign_inputs) ctx.store.markSpent(id);
    const source = `swap:${id}`;
    const kept = ctx.store.insertProofs(keep, r.mint, r.unit, 'unspent', source);
    const sent = ctx.store.insertProofs(send, r.mint, r.unit, outs.sendState ?? 'unspent', source);
    if (r.foreign_inputs) {
      ctx.ledger.record({ kind: CREDIT[r.purpose as ForeignPurpose], mint: r.mint, unit: r.unit, amount: r.inputs_amount, ref: r.ref ?? id, evidence: { swap: id, ...(extraEvidence ? { recovery: extraEvidence } : {}) } });
    }
    if (fee < 0) throw new WalletError(`swap ${id}: outputs ${received} exceed inputs ${r.inputs_amount}`);
    ctx.ledger.record({ kind: 'mint_fee', mint: r.mint, unit: r.unit, amount: -fee, ref: id, evidence: { swap: id, purpose: r.purpose, inputs: r.inputs_amount, outputs: received } });
    setState(ctx, id, 'done', null);
    result = { swapId: id, mint: r.mint, unit: r.unit, inputAmount: r.inputs_amount, fee, keep: kept, send: sent };
  })();
  return result;
}

export interface SwapRecovery {
  swapId: string;
  outcome: 'completed' | 'restored' | 'released' | 'lost' | 'retry_later';
  detail?: string;
}

/** Resolve every swap left 'prepared' by a crash or an unknown outcome. Idempotent. */
export async function resumeSwaps(ctx: WalletContext): Promise<SwapRecovery[]> {
  const rows = ctx.db.prepare(`SELECT * FROM wallet_swaps WHERE state = 'prepared' ORDER BY created_at`).all() as SwapRow[];
  const out: SwapRecovery[] = [];
  for (const r of rows) {
    try {
      out.push(await resumeOne(ctx, r));
    } catch (err) {
      out.push({ swapId: r.id, outcome: 'retry_later', detail: (err as Error).message });
    }
  }
  return out;
}

async function resumeOne(ctx: WalletContext, r: SwapRow): Promise<SwapRecovery> {
  const own = r.foreign_inputs === null;
  const inputs: Proof[] = own ? ctx.store.pendingOf(r.id).map(toCashuProof) : JSON.parse(r.foreign_inputs!);
  const outs = JSON.parse(r.outputs ?? '{}') as StoredOutputs;
  const keepOut = deserializeOutputs(outs.keep);
  const sendOut = deserializeOutputs(outs.send);
  const states = await ctx.mints.checkStates(r.mint, r.unit, inputs);
  if (states.some((s) => s === 'PENDING')) return { swapId: r.id, outcome: 'retry_later', detail: 'inputs pending at the mint' };
  if (states.every((s) => s === 'UNSPENT')) {
    if (own) {
      ctx.db.transaction(() => { ctx.store.releasePending(r.id); setState(ctx, r.id, 'failed', 'never reached the mint; inputs released'); })();
      return { swapId: r.id, outcome: 'released' };
    }
    // Foreign inputs: redo the same swap with the same outputs (safe: none were signed).
    const w = await ctx.mints.wallet(r.mint, r.unit);
    const preview: SwapPreview = { amount: Amount.from(r.inputs_amount - r.fee), fees: Amount.from(r.fee), keysetId: outs.keysetId, inputs, keepOutputs: keepOut, sendOutputs: sendOut };
    await complete(ctx, r.id, w, preview);
    return { swapId: r.id, outcome: 'completed' };
  }
  // Inputs spent: our outputs were (most likely) signed. Ask for them back.
  const restored = await ctx.mints.restore(r.mint, r.unit, [...keepOut, ...sendOut]);
  if (restored && restored.length > 0) {
    const sendBs = new Set(sendOut.map((o) => o.blindedMessage.B_));
    const all = [...keepOut, ...sendOut];
    const isSend = (p: Proof) => { const i = all.findIndex((o) => new TextDecoder().decode(o.secret) === p.secret); return i >= 0 && sendBs.has(all[i].blindedMessage.B_); };
    settle(ctx, r.id, restored.filter((p) => !isSend(p)), restored.filter(isSend), { restored: restored.length });
    return { swapId: r.id, outcome: 'restored' };
  }
  const evidence = { swap: r.id, purpose: r.purpose, inputs: inputs.length, states, reason: restored ? 'mint restored no outputs' : 'inputs spent; the mint offers no NUT-09 restore to recover our outputs' };
  ctx.db.transaction(() => {
    if (own) {
      const unspent = inputs.filter((_, i) => states[i] === 'UNSPENT').map((p) => p.secret);
      if (unspent.length) ctx.store.releaseSecrets(unspent);
      const spent = ctx.store.pendingOf(r.id);
      ctx.store.markSpent(r.id);
      ctx.ledger.record({ kind: 'loss', mint: r.mint, unit: r.unit, amount: -sumAmounts(spent), ref: r.id, evidence });
    } else {
      ctx.ledger.record({ kind: CREDIT[r.purpose as ForeignPurpose], mint: r.mint, unit: r.unit, amount: r.inputs_amount, ref: r.ref ?? r.id, evidence: { swap: r.id } });
      ctx.ledger.record({ kind: 'loss', mint: r.mint, unit: r.unit, amount: -r.inputs_amount, ref: r.id, evidence });
    }
    setState(ctx, r.id, 'lost', evidence.reason);
  })();
  ctx.logger.error('swap outputs lost', evidence);
  return { swapId: r.id, outcome: 'lost', detail: evidence.reason };
}
