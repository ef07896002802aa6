// Taking a token for a payment: offline selection over the proofs we hold (wallet/select.ts),
// else one swap at the mint; then, in one synchronous step, the token encoded and the proofs
// moved unspent -> pending(payment) in the same transaction as the payment's row and the
// caller's `inTransaction` (the router's attempt row), before any byte goes out.
// DESIGN.md "The life of one request" step 4.
import { sat, type Sat } from '../../protocol/units.ts';
import { encodeCashuB } from '../cashu-b.ts';
import type { WalletContext } from '../context.ts';
import { InsufficientFundsError, PaymentError, PaymentStateError, ProofStateError } from '../errors.ts';
import { inputFeeSat, selectIncluding, splitAmount, type SelectPolicy } from '../select.ts';
import { heldCoin } from '../store.ts';
import type { Reserve } from './reserve.ts';
import type { PaymentRows } from './rows.ts';

export interface TakenToken {
  paymentId: string;
  mint: string;
  tokenMint: string;
  unit: 'sat';
  /** cashuB token to send in X-Cashu. */
  token: string;
  /** What the provider nets after paying the mint's input fee. */
  amountSat: Sat;
  /** Face value of the token: amountSat + feeSat + overpaySat. */
  sentSat: Sat;
  feeSat: Sat;
  overpaySat: Sat;
  proofCount: number;
  /** A swap at the mint was needed to make this token. */
  mintRoundTrip: boolean;
}

/** Take a token offline now with the caller's policy (null if the proofs do not fit); `roundtrip`: a swap was needed first. */
type Take = (roundtrip: boolean) => TakenToken | null;

export interface TakeSpec {
  paymentId: string;
  mint: string;
  tokenMint: string;
  amountSat: Sat;
  providerUrl: string | null;
  providerVersion: string | null;
  /** A deposit into this session (null: an X-Cashu payment). */
  sessionId: string | null;
  /** A top-up: the payment's pending proofs are kept in the new token and its row is updated. */
  replace: boolean;
  inTransaction?: (taken: TakenToken) => void;
}

export interface TakerOptions {
  /** Offline selection policy per amount. */
  policy: (amountSat: number) => SelectPolicy;
  /** Start a background reserve refill after each token when it runs low. */
  autoRefill: boolean;
  /** Called synchronously once a token is out for `paymentId` (so recovery leaves it alone). */
  onTaken: (paymentId: string) => void;
}

export class TokenTaker {
  readonly unit = 'sat' as const;

  constructor(
    private readonly ctx: WalletContext,
    private readonly reserve: Reserve,
    private readonly rows: PaymentRows,
    private readonly opts: TakerOptions,
  ) {}

  async take(spec: TakeSpec, policy?: SelectPolicy): Promise<TakenToken> {
    const fees = await this.feeMap(spec.mint);
    const take: Take = (roundtrip) => this.takeOffline(spec, fees, policy ?? this.opts.policy(spec.amountSat), roundtrip);
    let first: TakenToken | null;
    try {
      first = take(false);
    } catch (err) {
      // Our own split (a refill, another payment's) holds proofs in its swap for a moment: the
      // money is ours and comes back split; wait for it rather than refuse the payment.
      if (!(err instanceof InsufficientFundsError) || !(await this.reserve.splitsDone(spec.mint))) throw err;
      first = take(false);
    }
    const taken = first ?? (await this.takeWithSwap(spec.mint, this.stillNeeded(spec), take));
    this.afterTake(spec.mint);
    return taken;
  }

  /** What new proofs must add (before input fees): the whole amount, or for a top-up what its kept proofs do not cover. */
  private stillNeeded(spec: TakeSpec): { amountSat: number; keptCount: number } {
    const kept = spec.replace ? this.ctx.store.pendingOf(spec.paymentId) : [];
    const keptSat = kept.reduce((a, p) => a + p.amount, 0);
    return { amountSat: Math.max(1, spec.amountSat - keptSat), keptCount: kept.length };
  }

  private async feeMap(mint: string): Promise<Map<string, number>> {
    const wallet = await this.ctx.mints.wallet(mint, this.unit);
    return new Map(wallet.keyChain.getKeysets().filter((k) => k.unit === this.unit).map((k) => [k.id, k.fee]));
  }

  /**
   * Select, encode and record in one synchronous step, or null when no offline selection fits. The
   * coins come from memory (the store follows every write to them); should the table disagree,
   * movePending refuses them before anything is written, and they are read again once.
   */
  private takeOffline(spec: TakeSpec, fees: ReadonlyMap<string, number>, policy: SelectPolicy, roundtrip: boolean): TakenToken | null {
    try {
      return this.takeFrom(spec, fees, policy, roundtrip, false);
    } catch (err) {
      if (!(err instanceof ProofStateError)) throw err;
      this.ctx.logger.warn('cached unspent proofs were stale; reading them again', { mint: spec.mint });
      return this.takeFrom(spec, fees, policy, roundtrip, true);
    }
  }

  private takeFrom(spec: TakeSpec, fees: ReadonlyMap<string, number>, policy: SelectPolicy, roundtrip: boolean, fresh: boolean): TakenToken | null {
    const { ctx } = this;
    const { paymentId, mint, replace } = spec;
    // A top-up keeps every proof of the token it replaces: the provider has seen them.
    const kept = replace ? ctx.store.pendingOf(paymentId).map(heldCoin) : [];
    const unspent = ctx.store.unspentCoins(mint, this.unit, { fresh });
    const sel = selectIncluding(kept, unspent.coins, spec.amountSat, fees, policy);
    if (!sel) {
      const have = unspent.coins.reduce((a, c) => a + c.amountSat, 0) + kept.reduce((a, c) => a + c.amountSat, 0);
      if (have < spec.amountSat) throw new InsufficientFundsError(spec.amountSat, have, this.unit, mint);
      return null;
    }
    const keptSecrets = new Set(kept.map((c) => c.secret));
    const addedCoins = sel.coins.filter((c) => !keptSecrets.has(c.secret));
    const added = addedCoins.map((c) => c.secret);
    // Without the proofs' DLEQ proofs, as routstr's own client sends (include_dleq=False): the node
    // redeems the token at the mint anyway, which is the verdict on every proof, while a DLEQ
    // carried in the token hands it each proof's blinding factor r (so the mint's signing of it
    // can be linked to this payment), ~150 more characters per proof in the header, and its re-check
    // (routstr-core checks a DLEQ that is present). The wallet keeps them. encodeCashuB always
    // leaves them out: cashu-ts's getEncodedToken(..., { removeDleq: true }) string, at a fraction of its cost.
    const proofs = sel.coins.map((c) => ({ keysetId: c.keysetId, amount: c.amountSat, secret: c.secret, C: c.C, witness: c.witness, p2pkE: c.p2pkE }));
    const token = encodeCashuB({ mint: spec.tokenMint, unit: this.unit, proofs });
    const taken: TakenToken = {
      paymentId, mint, tokenMint: spec.tokenMint, unit: this.unit, token, amountSat: spec.amountSat, sentSat: sat(sel.totalSat), feeSat: sat(sel.feeSat),
      overpaySat: sat(sel.overpaySat), proofCount: proofs.length, mintRoundTrip: roundtrip,
    };
    ctx.db.transaction(() => {
      if (replace && ctx.store.pendingOf(paymentId).length !== kept.length) throw new PaymentStateError(`payment ${paymentId} changed while its top-up was made`);
      // First, so that a refusal (a coin not unspent any more) comes before anything else is written.
      ctx.store.movePending(added, 'request', paymentId);
      const record = { token, amountSat: taken.amountSat, sentSat: taken.sentSat, feeSat: taken.feeSat, overpaySat: taken.overpaySat, roundtrip };
      if (replace) this.rows.replaceToken(paymentId, record);
      else this.rows.insert({ paymentId, mint, tokenMint: spec.tokenMint, unit: this.unit, providerUrl: spec.providerUrl, providerVersion: spec.providerVersion, sessionId: spec.sessionId, ...record });
      // A callback that awaits would write outside this transaction: refuse it (and roll back).
      const returned: unknown = spec.inTransaction?.(taken);
      if (returned && typeof (returned as { then?: unknown }).then === 'function') {
        throw new PaymentError('inTransaction must be synchronous: it runs inside the transaction that takes the proofs, and returned a promise');
      }
    })();
    ctx.store.unspentTaken(mint, this.unit, unspent.version, added);
    this.reserve.noteTaken(mint, addedCoins.map((c) => c.amountSat));
    this.opts.onTaken(paymentId); // in the same synchronous step, so recovery can never see it as an orphan
    return taken;
  }

  /**
   * Swap so that the token's exact denominations exist (refilling the reserve on the way), then
   * take it with the caller's policy - never a looser one. Swaps of one mint run one at a time; a
   * payment that waited for another's swap first tries again offline, so concurrent shortfalls
   * cost one swap, not one each.
   */
  private async takeWithSwap(mint: string, need: { amountSat: number; keptCount: number }, take: Take): Promise<TakenToken> {
    const wallet = await this.ctx.mints.wallet(mint, this.unit);
    const ppk = wallet.keyChain.getKeysets().find((k) => k.id === wallet.keysetId)?.fee ?? 0;
    // The new proofs will be the standard split of what is needed + the input fee of the whole
    // token (a top-up's kept proofs included), so that the token is exact.
    let total = need.amountSat;
    for (let i = 0; i < 16; i++) {
      const next = need.amountSat + inputFeeSat(need.keptCount + splitAmount(total).length, ppk);
      if (next === total) break;
      total = next;
    }
    const result = await this.reserve.exclusive(mint, async () => {
      // Another payment's swap (or a refill) may have made the proofs while this one waited for
      // it; it still waited on the mint, so it counts as a round trip.
      const waited = take(true);
      if (waited) return { taken: waited };
      let outcome: Awaited<ReturnType<Reserve['split']>> | undefined;
      // A concurrent payment may take part of the split before this one does: swap again (rarely).
      for (let round = 0; round < 3; round++) {
        outcome = await this.reserve.split(mint, splitAmount(total));
        if (outcome?.status !== 'done') return { outcome };
        const taken = take(true);
        if (taken) return { taken, outcome };
      }
      return { outcome };
    });
    if (result.taken) return result.taken;
    const outcome = result.outcome;
    if (outcome?.status === 'retry') throw new PaymentStateError(`mint ${mint} did not answer the swap needed for this token; try again shortly (${outcome.failure.message})`);
    if (outcome?.status === 'done') throw new PaymentStateError(`the proofs swapped for a token of ${need.amountSat} sat at ${mint} were taken by concurrent payments; try again`);
    const have = this.ctx.store.selectUnspent(mint, this.unit).reduce((a, p) => a + p.amount, 0);
    if (outcome === null || outcome === undefined) throw new InsufficientFundsError(total, have, this.unit, mint);
    throw new PaymentStateError(`could not make a token of ${need.amountSat} sat at ${mint}: ${outcome.status}`);
  }

  private afterTake(mint: string): void {
    if (!this.opts.autoRefill) return;
    this.reserve.maybeRefill(mint)?.catch((err) => this.ctx.logger.warn('reserve refill failed', { mint, error: (err as Error).message }));
  }
}
