// One swap service for every purpose (receive, change, refund, split, reclaim): crash-safe swaps
// at the mint (NUT-03), their crypto on the swap engine (a worker thread by default).
//
// Lifecycle of one swap (a wallet_swaps row, see records.ts):
//   1. blind the outputs and check incoming DLEQ proofs (engine; no mint call);
//   2. one transaction: own inputs -> pending(swap, id), the row 'prepared' with the outputs;
//   3. the mint call with exactly those outputs (a retry re-sends the same ones);
//   4. one transaction: inputs spent, new proofs unspent, the purpose's rows, row 'done'.
// A crash or an unanswered call leaves the row 'prepared' (uncertain); resume() re-sends it.
// Whether an earlier attempt went through is told by the mint's answer to the re-send: 11003
// (our outputs are signed already: a mint that checks outputs first, as Nutshell does) or 11001
// after an unanswered attempt means it did: NUT-09 restore recovers the signatures (of every
// output set ever sent: a keyset rotation replaces outputs but keeps the old ones on record); a
// mint without restore leaves a loss with evidence. 12001/12002 (keyset rotated) means nothing
// was signed this time: new outputs are blinded and sent once more.
// Each purpose writes its ledger rows and its own tables through a PurposeHandler inside the
// swap's transaction, so a swap resumed after a restart settles exactly like one that never stopped.
import { OutputData } from '@cashu/cashu-ts';
import type { WalletContext } from '../context.ts';
import { durableCommit } from '../durable.ts';
import { newId } from '../ids.ts';
import { MintRejectedError, SwapStepError, type SwapFailure } from '../errors.ts';
import { NUT_CODE } from '../mints.ts';
import { toCashuProof, type StoredProof } from '../store.ts';
import type { SwapEngine } from './engine.ts';
import { SwapRecords, type SwapPurpose, type SwapRecord } from './records.ts';
import { toProofJson, type MintCache, type ProofJson } from './steps.ts';

export type { SwapPurpose, SwapRecord } from './records.ts';

export interface SwapSpec {
  mint: string;
  unit: string;
  purpose: SwapPurpose;
  ref: string | null;
  /** Own unspent proofs to spend; they move to pending(swap, id) with the row. */
  own?: readonly StoredProof[];
  /** Own proofs pending for this payment (a reclaim); they move to pending(swap, id). */
  reclaimRef?: string;
  /** Proofs from a token someone gave us (received, change, refund). */
  foreign?: readonly ProofJson[];
  /** Output denominations wanted; the rest of the amount is split the default way. */
  denominations?: number[];
  /** Refuse foreign proofs that carry no valid DLEQ proof (else the mint's swap is their check). */
  requireDleq?: boolean;
  /** Runs inside the transaction that writes the swap row. */
  onPrepared?: (swapId: string) => void;
  /** A payment waits for this swap: its curve arithmetic goes first on the swap thread (this run only, not a resend). */
  urgent?: boolean;
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
  done(swap: SwapRecord, result: SwapResult): void;
  /** The mint refused, nothing happened. Own inputs are still pending(swap, swap.id): move them. */
  rejected(swap: SwapRecord, failure: SwapFailure, ownSecrets: string[]): void;
  /** We cannot tell whether the swap happened and cannot restore it. Own inputs are already spent with a loss row. */
  lost(swap: SwapRecord, evidence: unknown): void;
}

export type SwapOutcome =
  | ({ status: 'done'; swapId: string } & SwapResult)
  /** Refused before anything was written (bad incoming proofs) or by the mint (nothing happened). */
  | { status: 'rejected'; swapId: string | null; failure: SwapFailure }
  /** No usable answer; the row stays prepared and resume() will re-send it. */
  | { status: 'retry'; swapId: string; failure: SwapFailure }
  | { status: 'lost'; swapId: string; evidence: unknown };

/** Wait before the next attempt at an unanswered swap: short at first, then every 5 minutes. */
export const SWAP_BACKOFF_MS = [1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000] as const;

export function backoffMs(attempts: number): number {
  return SWAP_BACKOFF_MS[Math.min(Math.max(attempts - 1, 0), SWAP_BACKOFF_MS.length - 1)];
}

const isKeysetRefusal = (f: SwapFailure) => f.kind === 'rejected' && (f.mintCode === NUT_CODE.KEYSET_INACTIVE || f.mintCode === NUT_CODE.KEYSET_UNKNOWN);

export class SwapService {
  readonly records: SwapRecords;
  private readonly handlers = new Map<SwapPurpose, PurposeHandler>();
  /** Swaps this process is running now: a second resume of one shares the run (no two calls race on a row). */
  private readonly inFlight = new Map<string, Promise<SwapOutcome>>();
  /** Swaps a payment waits for (their curve arithmetic goes first on the swap thread). */
  private readonly urgent = new Set<string>();
  /** Swaps sent to a mint (each attempt), for the round-trip figures. */
  mintCalls = 0;

  constructor(private readonly ctx: WalletContext, readonly engine: SwapEngine) {
    this.records = new SwapRecords(ctx.db, ctx.clock);
  }

  on(purpose: SwapPurpose, handler: PurposeHandler): void {
    this.handlers.set(purpose, handler);
  }

  /**
   * What the engine needs to act for this mint without asking it (keys and info). Keys of rotated
   * keysets are loaded when inputs use them (their DLEQ checks need the keys); an input keyset the
   * mint does not list (even after reloading) is the mint's refusal (its keyset list says so; the
   * swap would get 12001), not a failure of ours.
   */
  async mintCache(mint: string, unit: string, inputKeysets: Iterable<string> = []): Promise<MintCache> {
    const ids = [...new Set(inputKeysets)];
    let wallet = await this.ctx.mints.wallet(mint, unit);
    const known = () => ids.every((id) => { try { wallet.keyChain.getKeyset(id); return true; } catch { return false; } });
    if (!known()) wallet = await this.ctx.mints.refresh(mint, unit, true);
    if (!known()) throw new SwapStepError({ kind: 'rejected', mintCode: NUT_CODE.KEYSET_UNKNOWN, message: `a keyset the mint ${mint} does not list for unit ${unit}` });
    for (const id of ids) {
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
    let prepared;
    try {
      const cache = await this.mintCache(spec.mint, spec.unit, inputs.map((p) => p.id));
      prepared = await this.engine.prepare({ cache, inputs, denominations: spec.denominations ?? [], requireDleq: spec.requireDleq ?? false, urgent: spec.urgent });
    } catch (err) {
      // Nothing written, nothing sent: refused by the mint's keyset list, or not prepared on our side.
      if (err instanceof SwapStepError && err.failure.kind !== 'unavailable') return { status: 'rejected', swapId: null, failure: err.failure };
      throw err;
    }
    const id = newId('swap');
    const version = ctx.store.unspentVersion();
    ctx.db.transaction(() => {
      if (spec.reclaimRef) {
        // pending(request) -> pending(swap): the provider saw these secrets, so they are swapped, not just released.
        ctx.store.releasePending(spec.reclaimRef);
        ctx.store.movePending(reclaimed.map((p) => p.secret), 'swap', id);
      }
      if (spec.own?.length) ctx.store.movePending(spec.own.map((p) => p.secret), 'swap', id);
      this.records.insert({
        id, mint: spec.mint, unit: spec.unit, purpose: spec.purpose, ref: spec.ref, foreign,
        inputsAmount: inputs.reduce((a, p) => a + p.amount, 0), fee: prepared.fee, keysetId: prepared.keysetId, outputs: prepared.outputs,
      });
      spec.onPrepared?.(id);
    })();
    // The coins offered to selection follow our inputs out (else the next take reads every unspent
    // proof again); the store drops them instead when the commit did more (a reclaim's moves).
    if (spec.own?.length) ctx.store.unspentTaken(spec.mint, spec.unit, version, spec.own.map((p) => p.secret));
    if (!spec.urgent) return this.resume(id);
    this.urgent.add(id);
    return this.resume(id).finally(() => this.urgent.delete(id));
  }

  /** Send (or re-send) a prepared swap and settle it. Concurrent calls for one swap share the run. */
  resume(swapId: string): Promise<SwapOutcome> {
    const running = this.inFlight.get(swapId);
    if (running) return running;
    const run = this.run(swapId).finally(() => this.inFlight.delete(swapId));
    this.inFlight.set(swapId, run);
    return run;
  }

  /** Is this process running that swap right now? */
  isRunning(swapId: string): boolean {
    return this.inFlight.has(swapId);
  }

  /** Wait for the swaps running now (each ends within the mint request timeout). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.inFlight.values()]);
  }

  /** Ids of prepared swaps whose retry time has come (all of them when `all`). */
  due(all = false): string[] {
    return this.records.due(this.ctx.clock(), all);
  }

  /**
   * Resume every prepared swap that is due; returns their outcomes (a swap that throws is logged and
   * left prepared). Skipped: swaps this process is running now (their caller finishes them) and
   * those of a purpose no handler is registered for yet.
   */
  async resumeDue(all = false): Promise<SwapOutcome[]> {
    const out: SwapOutcome[] = [];
    for (const id of this.due(all)) {
      const purpose = this.records.get(id)?.purpose;
      if (!purpose || !this.handlers.has(purpose) || this.inFlight.has(id)) continue;
      try {
        out.push(await this.resume(id));
      } catch (err) {
        this.ctx.logger.error('resuming a swap failed', { swap: id, error: (err as Error).message });
      }
    }
    return out;
  }

  private load(swapId: string): SwapRecord {
    const swap = this.records.get(swapId);
    if (!swap) throw new Error(`swap ${swapId} not found`);
    return swap;
  }

  private handler(purpose: SwapPurpose): PurposeHandler {
    const h = this.handlers.get(purpose);
    if (!h) throw new Error(`no handler for ${purpose} swaps`);
    return h;
  }

  private async run(swapId: string, rotated = false): Promise<SwapOutcome> {
    const { ctx } = this;
    const swap = this.load(swapId);
    if (swap.state !== 'prepared') throw new Error(`swap ${swapId} is ${swap.state}, not prepared`);
    this.handler(swap.purpose);
    const own = ctx.store.pendingOf(swapId);
    const inputs = [...own.map((p) => toProofJson(toCashuProof(p))), ...swap.foreign];
    const cache = await this.mintCache(swap.mint, swap.unit, inputs.map((p) => p.id)).catch((err) => err as Error);
    // Nothing was sent this time; an attempt still marked in flight (cut off by a crash) stays uncertain.
    if (cache instanceof Error) return this.unanswered(swap, { kind: 'unavailable', message: cache.message, refused: true }, false);
    // An earlier attempt that got no answer (or was cut off by a crash) may have done the swap already.
    const wasUncertain = swap.inFlight || swap.uncertain;
    // On disk before the call (with the prepared row before it): the outputs are the only way back to the signatures.
    await durableCommit(ctx, () => this.records.sending(swapId));
    this.mintCalls++;
    try {
      const { proofs } = await this.engine.complete({ cache, inputs, outputs: swap.outputs, keysetId: swap.keysetId, urgent: this.urgent.has(swapId) });
      return this.finish(swap, proofs, own, false);
    } catch (err) {
      if (!(err instanceof SwapStepError)) throw err;
      const failure = err.failure;
      if (failure.kind === 'unavailable') return this.unanswered(swap, failure, true);
      ctx.db.transaction(() => this.records.answered(swapId, { uncertain: false, nextAt: ctx.clock(), error: failure.message }))();
      if (isKeysetRefusal(failure) && !rotated) {
        // The mint rotated keysets, so these outputs were not signed: blind new ones, try once more.
        await ctx.mints.refresh(swap.mint, swap.unit, true);
        const again = await this.mintCache(swap.mint, swap.unit, inputs.map((p) => p.id))
          .then((fresh) => this.engine.prepare({ cache: fresh, inputs, denominations: [], requireDleq: false }))
          .catch((e) => e as Error);
        if (again instanceof Error) return this.reject(swap, own, again instanceof SwapStepError ? again.failure : { kind: 'invalid', message: again.message });
        ctx.db.transaction(() => this.records.replaceOutputs(swap, again.keysetId, again.outputs, again.fee))();
        return this.run(swapId, true);
      }
      const signedBefore = failure.kind === 'rejected' && failure.mintCode === NUT_CODE.OUTPUTS_ALREADY_SIGNED;
      const spentAfterUncertain = failure.kind === 'rejected' && failure.mintCode === NUT_CODE.PROOFS_ALREADY_SPENT && wasUncertain;
      if (signedBefore || spentAfterUncertain) return this.restoreOrLose(swap, own, failure);
      return this.reject(swap, own, failure);
    }
  }

  private finish(swap: SwapRecord, proofs: ProofJson[], own: StoredProof[], restored: boolean): SwapOutcome {
    const { ctx } = this;
    const amount = proofs.reduce((a, p) => a + p.amount, 0);
    const ownAmount = own.reduce((a, p) => a + p.amount, 0);
    const foreignAmount = swap.foreign.reduce((a, p) => a + p.amount, 0);
    const fee = ownAmount + foreignAmount - amount;
    let stored: StoredProof[] = [];
    const version = ctx.store.unspentVersion();
    ctx.db.transaction(() => {
      if (this.records.get(swap.id)?.state !== 'prepared') throw new Error(`swap ${swap.id} was settled meanwhile`);
      if (fee < 0) throw new Error(`swap ${swap.id}: outputs ${amount} exceed inputs ${ownAmount + foreignAmount}`);
      if (own.length) ctx.store.markSpent(swap.id);
      stored = ctx.store.insertProofs(proofs, swap.mint, swap.unit, 'unspent', `swap:${swap.id}`);
      this.records.setFee(swap.id, fee);
      this.records.setState(swap.id, 'done');
      this.handler(swap.purpose).done(swap, { proofs: stored, amount, fee, ownAmount, foreignAmount, restored });
    })();
    // The next take need not read every unspent proof again (the cache follows a plain swap's outputs).
    ctx.store.unspentAdded(swap.mint, swap.unit, version, stored);
    return { status: 'done', swapId: swap.id, proofs: stored, amount, fee, ownAmount, foreignAmount, restored };
  }

  private reject(swap: SwapRecord, own: StoredProof[], failure: SwapFailure): SwapOutcome {
    const { ctx } = this;
    ctx.db.transaction(() => {
      this.records.setState(swap.id, 'failed', failure.message);
      this.handler(swap.purpose).rejected(swap, failure, own.map((p) => p.secret));
    })();
    return { status: 'rejected', swapId: swap.id, failure };
  }

  /** No usable answer (`sent`: this attempt's call went out). The swap stays prepared and is re-sent after a backoff. */
  private unanswered(swap: SwapRecord, failure: SwapFailure, sent: boolean): SwapOutcome {
    const { ctx } = this;
    // Only a call that went out can have been done; a refused connection never reached the mint.
    // An attempt a crash cut off (still marked in flight) stays uncertain either way.
    const uncertain = swap.inFlight || (sent && !(failure.kind === 'unavailable' && failure.refused));
    const attempts = swap.attempts + (sent ? 1 : 0);
    ctx.db.transaction(() => this.records.answered(swap.id, { uncertain, nextAt: ctx.clock() + backoffMs(Math.max(attempts, 1)), error: failure.message }))();
    ctx.logger.warn('swap unanswered; will retry', { swap: swap.id, purpose: swap.purpose, mint: swap.mint, error: failure.message });
    return { status: 'retry', swapId: swap.id, failure };
  }

  /** An earlier attempt went through, or may have: ask for our signatures back (NUT-09), else record the loss. */
  private async restoreOrLose(swap: SwapRecord, own: StoredProof[], failure: SwapFailure): Promise<SwapOutcome> {
    const { ctx } = this;
    let restored: ProofJson[] | null = null;
    try {
      const outputs = [...swap.earlier.flat(), ...swap.outputs].map((o) => OutputData.deserialize(o));
      const proofs = await ctx.mints.restore(swap.mint, swap.unit, outputs);
      restored = proofs ? proofs.map(toProofJson) : null;
    } catch (err) {
      if (!(err instanceof MintRejectedError)) return this.unanswered(swap, { kind: 'unavailable', message: (err as Error).message, refused: false }, false);
    }
    if (restored && restored.length > 0) return this.finish(swap, restored, own, true);
    const evidence = {
      swap: swap.id, purpose: swap.purpose, mint_answer: failure.message, mint_code: failure.kind === 'rejected' ? failure.mintCode : undefined,
      restore: restored === null ? 'mint has no NUT-09 restore' : 'mint restored no signatures', inputs_amount: swap.inputsAmount,
    };
    ctx.db.transaction(() => {
      if (own.length) {
        ctx.store.markSpent(swap.id);
        ctx.ledger.record({ kind: 'loss', mint: swap.mint, unit: swap.unit, amount: -own.reduce((a, p) => a + p.amount, 0), ref: swap.id, evidence });
      }
      this.records.setState(swap.id, 'lost', failure.message);
      this.handler(swap.purpose).lost(swap, evidence);
    })();
    ctx.logger.error('swap outcome unknown and not restorable; recorded as lost', { swap: swap.id, purpose: swap.purpose, mint: swap.mint });
    return { status: 'lost', swapId: swap.id, evidence };
  }
}
