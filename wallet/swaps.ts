// Crash-safe swaps for the payment path: change and refund tokens coming in, splitting a large
// proof into the small-denomination reserve, and reclaiming a token a provider never redeemed.
//
// Lifecycle of one swap (a row in wallet_swaps, retry state in payment_swaps):
//   1. blind the outputs (swap engine, usually a worker thread; no mint call);
//   2. one transaction: own inputs -> pending(swap, id), the row 'prepared' with the outputs;
//   3. the mint call with exactly those outputs (a retry re-sends the same ones);
//   4. one transaction: inputs spent, new proofs unspent, ledger rows, row 'done'.
// A crash or an unanswered call leaves the row 'prepared'; resume() re-sends it. If the mint
// then says the inputs are spent and an earlier attempt went unanswered, our own swap may have
// spent them: NUT-09 restore recovers the signatures; a mint without restore leaves a loss with
// evidence. The purpose's ledger rows and its own tables are written by a PurposeHandler, so a
// swap resumed after a restart settles exactly like one that never stopped.
import { OutputData, type SerializedOutputData } from '@cashu/cashu-ts';
import type { WalletContext } from './context.ts';
import { newId } from './context.ts';
import { toCashuProof, type StoredProof } from './store.ts';
import { NUT_CODE } from './mints.ts';
import { MintRejectedError } from './errors.ts';
import type { SwapEngine } from './swap-engine.ts';
import { SwapStepError, toProofJson, type MintCache, type ProofJson, type SwapFailure } from './swap-ops.ts';

export type SwapPurpose = 'change' | 'refund' | 'split' | 'reclaim';

export interface SwapSpec {
  mint: string;
  unit: string;
  purpose: SwapPurpose;
  ref: string | null;
  /** Own unspent proofs to spend; they move to pending(swap, id) with the row. */
  own?: readonly StoredProof[];
  /** Own proofs pending for this request (a reclaim); they move to pending(swap, id). */
  reclaimRef?: string;
  /** Proofs from a token someone gave us (change, refund). */
  foreign?: readonly ProofJson[];
  /** Output denominations wanted; the rest of the amount is split the default way. */
  denominations?: number[];
  requireDleq?: boolean;
  /** Runs inside the transaction that writes the swap row. */
  onPrepared?: (swapId: string) => void;
}

export interface SwapRow {
  id: string;
  mint: string;
  unit: string;
  purpose: SwapPurpose;
  ref: string | null;
  foreign: ProofJson[];
  inputsAmount: number;
  fee: number;
  keysetId: string;
  outputs: SerializedOutputData[];
  /** Outputs of earlier attempts, replaced after a keyset rotation; kept for NUT-09 restore. */
  earlier: SerializedOutputData[][];
}

export interface SwapResult {
  proofs: StoredProof[];
  /** Sum of the new proofs = inputs - fee. */
  amount: number;
  fee: number;
  ownAmount: number;
  foreignAmount: number;
  restored: boolean;
}

/** A purpose's bookkeeping; every method runs inside the swap's transaction (synchronous). */
export interface PurposeHandler {
  /** New proofs are stored; write the ledger rows and the purpose's own rows. */
  done(row: SwapRow, result: SwapResult): void;
  /** The mint refused, nothing happened. Own inputs are still pending(swap, row.id): move them. */
  rejected(row: SwapRow, failure: SwapFailure, ownSecrets: string[]): void;
  /** We cannot tell whether the swap happened and cannot restore it. Own inputs are already spent with a loss row. */
  lost(row: SwapRow, evidence: unknown): void;
}

export type SwapOutcome =
  | ({ status: 'done'; swapId: string } & SwapResult)
  /** Refused before anything was written (bad incoming proofs) or by the mint (nothing happened). */
  | { status: 'rejected'; swapId: string | null; failure: SwapFailure }
  /** No usable answer; the row stays prepared and resume() will re-send it. */
  | { status: 'retry'; swapId: string; failure: SwapFailure }
  | { status: 'lost'; swapId: string; evidence: unknown };

/** Seconds between attempts at an unanswered swap: short at first, then every 5 minutes. */
export const SWAP_BACKOFF_MS = [1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000] as const;

export function backoffMs(attempts: number): number {
  return SWAP_BACKOFF_MS[Math.min(Math.max(attempts - 1, 0), SWAP_BACKOFF_MS.length - 1)];
}

interface DbRow {
  id: string; mint: string; unit: string; purpose: SwapPurpose; ref: string | null; state: string;
  foreign_inputs: string | null; inputs_amount: number; fee: number; outputs: string | null;
}

export class SwapService {
  private readonly handlers = new Map<SwapPurpose, PurposeHandler>();
  private readonly inFlight = new Map<string, Promise<SwapOutcome>>();
  private readonly s;
  /** Swaps sent to a mint (each attempt), for the round-trip figures. */
  mintCalls = 0;

  constructor(private readonly ctx: WalletContext, readonly engine: SwapEngine) {
    const db = ctx.db;
    this.s = {
      insertSwap: db.prepare(`INSERT INTO wallet_swaps (id, mint, unit, purpose, ref, state, foreign_inputs, inputs_amount, fee, outputs, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, 'prepared', ?, ?, ?, ?, ?, ?)`),
      insertRetry: db.prepare('INSERT INTO payment_swaps (swap_id, next_at) VALUES (?, ?)'),
      get: db.prepare('SELECT * FROM wallet_swaps WHERE id = ?'),
      setState: db.prepare('UPDATE wallet_swaps SET state = ?, error = ?, updated_at = ? WHERE id = ?'),
      setFee: db.prepare('UPDATE wallet_swaps SET fee = ?, updated_at = ? WHERE id = ?'),
      setOutputs: db.prepare('UPDATE wallet_swaps SET outputs = ?, fee = ?, updated_at = ? WHERE id = ?'),
      retry: db.prepare('SELECT * FROM payment_swaps WHERE swap_id = ?'),
      sending: db.prepare('UPDATE payment_swaps SET attempts = attempts + 1, in_flight = 1 WHERE swap_id = ?'),
      answered: db.prepare('UPDATE payment_swaps SET in_flight = 0, uncertain = MAX(uncertain, ?), next_at = ? WHERE swap_id = ?'),
      open: db.prepare(`SELECT w.id FROM wallet_swaps w JOIN payment_swaps p ON p.swap_id = w.id
        WHERE w.state = 'prepared' AND p.next_at <= ? ORDER BY p.next_at`),
      openAll: db.prepare(`SELECT w.id FROM wallet_swaps w JOIN payment_swaps p ON p.swap_id = w.id WHERE w.state = 'prepared'`),
    };
  }

  on(purpose: SwapPurpose, handler: PurposeHandler): void {
    this.handlers.set(purpose, handler);
  }

  /**
   * What a worker needs to act for this mint without asking it (keys and info). Keys of rotated
   * keysets are loaded only when inputs use them (their DLEQ checks need the keys).
   */
  async mintCache(mint: string, unit: string, inputKeysets: Iterable<string> = []): Promise<MintCache> {
    const wallet = await this.ctx.mints.wallet(mint, unit);
    for (const id of new Set(inputKeysets)) {
      if (!wallet.keyChain.getKeyset(id).hasKeys) await this.ctx.mints.call(mint, unit, (w) => w.keyChain.ensureKeysetKeys(id));
    }
    return { mint, unit, info: wallet.getMintInfo().cache, keychain: wallet.keyChain.cache };
  }

  /** Prepare, persist and run a new swap. */
  async start(spec: SwapSpec): Promise<SwapOutcome> {
    const { ctx } = this;
    const reclaimed = spec.reclaimRef ? ctx.store.pendingOf(spec.reclaimRef) : [];
    const own = [...(spec.own ?? []), ...reclaimed];
    const foreign = [...(spec.foreign ?? [])];
    const inputs = [...own.map((p) => toProofJson(toCashuProof(p))), ...foreign];
    const cache = await this.mintCache(spec.mint, spec.unit, inputs.map((p) => p.id));
    let prepared;
    try {
      prepared = await this.engine.prepare({ cache, inputs, denominations: spec.denominations ?? [], requireDleq: spec.requireDleq ?? false });
    } catch (err) {
      if (err instanceof SwapStepError) return { status: 'rejected', swapId: null, failure: err.failure };
      throw err;
    }
    const id = newId('swap');
    const now = ctx.clock();
    const inputsAmount = inputs.reduce((a, p) => a + p.amount, 0);
    ctx.db.transaction(() => {
      if (spec.reclaimRef) {
        // pending(request) -> pending(swap): the provider saw these secrets, so they are swapped, not just released.
        ctx.store.releasePending(spec.reclaimRef);
        ctx.store.movePending(reclaimed.map((p) => p.secret), 'swap', id);
      }
      if (spec.own?.length) ctx.store.movePending(spec.own.map((p) => p.secret), 'swap', id);
      this.s.insertSwap.run(id, spec.mint, spec.unit, spec.purpose, spec.ref, foreign.length ? JSON.stringify(foreign) : null,
        inputsAmount, prepared.fee, storeOutputs(prepared.keysetId, prepared.outputs), now, now);
      this.s.insertRetry.run(id, now);
      spec.onPrepared?.(id);
    })();
    return this.resume(id);
  }

  /** Send (or re-send) a prepared swap and settle it. Concurrent calls for one swap share the run. */
  resume(swapId: string): Promise<SwapOutcome> {
    const running = this.inFlight.get(swapId);
    if (running) return running;
    const run = this.run(swapId).finally(() => this.inFlight.delete(swapId));
    this.inFlight.set(swapId, run);
    return run;
  }

  /** Wait for the swaps running now (each ends within the mint request timeout). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.inFlight.values()]);
  }

  /** Ids of prepared swaps of this path whose retry time has come (all of them when `all`). */
  due(all = false): string[] {
    const rows = (all ? this.s.openAll.all() : this.s.open.all(this.ctx.clock())) as { id: string }[];
    return rows.map((r) => r.id);
  }

  /** Resume every prepared swap that is due; returns their outcomes (a swap that throws is logged and left prepared). */
  async resumeDue(all = false): Promise<SwapOutcome[]> {
    const out: SwapOutcome[] = [];
    for (const id of this.due(all)) {
      try {
        out.push(await this.resume(id));
      } catch (err) {
        this.ctx.logger.error('resuming a swap failed', { swap: id, error: (err as Error).message });
      }
    }
    return out;
  }

  private load(swapId: string): SwapRow & { state: string } {
    const r = this.s.get.get(swapId) as DbRow | undefined;
    if (!r) throw new Error(`swap ${swapId} not found`);
    return {
      id: r.id, mint: r.mint, unit: r.unit, purpose: r.purpose, ref: r.ref, state: r.state,
      foreign: r.foreign_inputs ? (JSON.parse(r.foreign_inputs) as ProofJson[]) : [],
      inputsAmount: r.inputs_amount, fee: r.fee,
      ...loadOutputs(r.outputs),
    };
  }

  private handler(purpose: SwapPurpose): PurposeHandler {
    const h = this.handlers.get(purpose);
    if (!h) throw new Error(`no handler for ${purpose} swaps`);
    return h;
  }

  private async run(swapId: string, rotated = false): Promise<SwapOutcome> {
    const { ctx } = this;
    const row = this.load(swapId);
    if (row.state !== 'prepared') throw new Error(`swap ${swapId} is ${row.state}, not prepared`);
    const own = ctx.store.pendingOf(swapId);
    const inputs = [...own.map((p) => toProofJson(toCashuProof(p))), ...row.foreign];
    const cache = await this.mintCache(row.mint, row.unit, inputs.map((p) => p.id)).catch((err) => err as Error);
    // Nothing was sent this time; but an attempt still marked in flight (cut off by a crash) stays uncertain.
    if (cache instanceof Error) return this.unanswered(row, { kind: 'unavailable', message: cache.message, refused: false });
    // An earlier attempt that got no answer (or was cut off by a crash) may have done the swap already.
    const before = this.s.retry.get(swapId) as { in_flight: number; uncertain: number };
    const wasUncertain = before.in_flight === 1 || before.uncertain === 1;
    ctx.db.transaction(() => {
      if (before.in_flight === 1) this.s.answered.run(1, ctx.clock(), swapId);
      this.s.sending.run(swapId);
    })();
    this.mintCalls++;
    try {
      const { proofs } = await this.engine.complete({ cache, inputs, outputs: row.outputs, keysetId: row.keysetId });
      return this.finish(row, proofs, own, false);
    } catch (err) {
      if (!(err instanceof SwapStepError)) throw err;
      const failure = err.failure;
      if (failure.kind === 'unavailable') return this.unanswered(row, failure);
      ctx.db.transaction(() => this.s.answered.run(0, ctx.clock(), swapId))();
      if (failure.kind === 'rejected' && (failure.mintCode === NUT_CODE.KEYSET_INACTIVE || failure.mintCode === NUT_CODE.KEYSET_UNKNOWN) && !rotated) {
        // The mint rotated keysets, so our outputs were never signed: blind new ones, try once more.
        await ctx.mints.refresh(row.mint, row.unit, true);
        const fresh = await this.mintCache(row.mint, row.unit, inputs.map((p) => p.id));
        const again = await this.engine.prepare({ cache: fresh, inputs, denominations: [], requireDleq: false }).catch((e) => e as Error);
        if (again instanceof Error) return this.reject(row, own, { kind: 'invalid', message: again.message });
        // The earlier outputs stay on record: an unanswered attempt may have had them signed.
        ctx.db.transaction(() => this.s.setOutputs.run(storeOutputs(again.keysetId, again.outputs, [...row.earlier, row.outputs]), again.fee, ctx.clock(), swapId))();
        return this.run(swapId, true);
      }
      // 11003: our own outputs were signed already, so an earlier attempt went through (a mint
      // that checks outputs before inputs, as Nutshell does, says so instead of 11001).
      if (failure.kind === 'rejected' && (failure.mintCode === NUT_CODE.OUTPUTS_ALREADY_SIGNED || (failure.mintCode === NUT_CODE.PROOFS_ALREADY_SPENT && wasUncertain))) {
        return this.restoreOrLose(row, own, failure);
      }
      return this.reject(row, own, failure);
    }
  }

  private finish(row: SwapRow, proofs: ProofJson[], own: StoredProof[], restored: boolean): SwapOutcome {
    const { ctx } = this;
    const amount = proofs.reduce((a, p) => a + p.amount, 0);
    const ownAmount = own.reduce((a, p) => a + p.amount, 0);
    const foreignAmount = row.foreign.reduce((a, p) => a + p.amount, 0);
    const fee = ownAmount + foreignAmount - amount;
    let stored: StoredProof[] = [];
    ctx.db.transaction(() => {
      if (own.length) ctx.store.markSpent(row.id);
      stored = ctx.store.insertProofs(proofs, row.mint, row.unit, 'unspent', `swap:${row.id}`);
      this.s.setFee.run(fee, ctx.clock(), row.id);
      this.s.setState.run('done', null, ctx.clock(), row.id);
      this.handler(row.purpose).done(row, { proofs: stored, amount, fee, ownAmount, foreignAmount, restored });
    })();
    return { status: 'done', swapId: row.id, proofs: stored, amount, fee, ownAmount, foreignAmount, restored };
  }

  private reject(row: SwapRow, own: StoredProof[], failure: SwapFailure): SwapOutcome {
    const { ctx } = this;
    ctx.db.transaction(() => {
      this.s.setState.run('failed', failure.message, ctx.clock(), row.id);
      this.handler(row.purpose).rejected(row, failure, own.map((p) => p.secret));
    })();
    return { status: 'rejected', swapId: row.id, failure };
  }

  private unanswered(row: SwapRow, failure: SwapFailure): SwapOutcome {
    const { ctx } = this;
    const uncertain = failure.kind === 'unavailable' && failure.refused ? 0 : 1;
    const retry = this.s.retry.get(row.id) as { attempts: number; in_flight: number };
    ctx.db.transaction(() => {
      // A refused connection never reached the mint; only an attempt that was out can be uncertain.
      this.s.answered.run(retry.in_flight === 1 ? uncertain : 0, ctx.clock() + backoffMs(Math.max(retry.attempts, 1)), row.id);
      this.s.setState.run('prepared', failure.message, ctx.clock(), row.id);
    })();
    ctx.logger.warn('swap unanswered; will retry', { swap: row.id, purpose: row.purpose, mint: row.mint, error: failure.message });
    return { status: 'retry', swapId: row.id, failure };
  }

  /** Inputs spent after an unanswered attempt: ask for our signatures back (NUT-09), else record the loss. */
  private async restoreOrLose(row: SwapRow, own: StoredProof[], failure: SwapFailure): Promise<SwapOutcome> {
    const { ctx } = this;
    let restored: ProofJson[] | null = null;
    try {
      const proofs = await ctx.mints.restore(row.mint, row.unit, [...row.earlier.flat(), ...row.outputs].map((o) => OutputData.deserialize(o)));
      restored = proofs ? proofs.map(toProofJson) : null;
    } catch (err) {
      if (!(err instanceof MintRejectedError)) return this.unanswered(row, { kind: 'unavailable', message: (err as Error).message, refused: false });
    }
    if (restored && restored.length > 0) return this.finish(row, restored, own, true);
    const evidence = { swap: row.id, purpose: row.purpose, mint_answer: failure.message, mint_code: failure.kind === 'rejected' ? failure.mintCode : undefined,
      restore: restored === null ? 'mint has no NUT-09 restore' : 'mint restored no signatures', inputs_amount: row.inputsAmount };
    ctx.db.transaction(() => {
      if (own.length) {
        ctx.store.markSpent(row.id);
        ctx.ledger.record({ kind: 'loss', mint: row.mint, unit: row.unit, amount: -own.reduce((a, p) => a + p.amount, 0), ref: row.id, evidence });
      }
      this.s.setState.run('lost', failure.message, ctx.clock(), row.id);
      this.handler(row.purpose).lost(row, evidence);
    })();
    ctx.logger.error('swap outcome unknown and not restorable; recorded as lost', { swap: row.id, purpose: row.purpose, mint: row.mint });
    return { status: 'lost', swapId: row.id, evidence };
  }
}

/** wallet_swaps.outputs, in the same shape wallet/swap.ts uses: {keysetId, keep: JSON of SerializedOutputData[]}. */
function storeOutputs(keysetId: string, outputs: SerializedOutputData[], earlier: SerializedOutputData[][] = []): string {
  return JSON.stringify({ keysetId, keep: JSON.stringify(outputs), ...(earlier.length ? { earlier } : {}) });
}

function loadOutputs(json: string | null): { keysetId: string; outputs: SerializedOutputData[]; earlier: SerializedOutputData[][] } {
  if (!json) return { keysetId: '', outputs: [], earlier: [] };
  const o = JSON.parse(json) as { keysetId: string; keep: string; earlier?: SerializedOutputData[][] };
  return { keysetId: o.keysetId, outputs: JSON.parse(o.keep) as SerializedOutputData[], earlier: o.earlier ?? [] };
}
