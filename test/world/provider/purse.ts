// The provider's earnings: a pool of Cashu proofs per mint and unit, kept in memory, with a
// cashu-ts Wallet per mint URL (as spelled) and unit. Redemption follows routstr-core v0.4.5's
// wallet.py: the mint's keysets are fetched on every redemption (load_mint_keysets), a token
// mixing keysets is refused, the whole token is swapped, and failures are classified as
// classify_redemption_error does. Mint calls go through the node's MintRateGuard: a 429 starts a
// cooldown during which the mint is not asked at all.
import { Amount, getDecodedToken, getEncodedToken, normalizeMintUrl, stripDleq, sumProofs, Wallet, type Proof } from '@cashu/cashu-ts';
import { classifyText, isRateLimited, mintErrorText, redeemError, RedeemError, transportFailure } from './errors.ts';

export { RedeemError } from './errors.ts';

export class InsufficientPoolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InsufficientPoolError';
  }
}

/** A mint is cooling down after a 429 (routstr's MintCooldownError, raised instead of waiting). */
export class MintCooldownError extends Error {
  constructor(readonly mint: string, readonly remainingMs: number) {
    super(`Mint ${mint} is cooling down; retry after ${(remainingMs / 1000).toFixed(2)}s`);
    this.name = 'MintCooldownError';
  }
}

export interface Redeemed {
  /** The mint as spelled in the token (same-mint redemption) or the node's primary (after a swap). */
  mint: string;
  unit: string;
  /** Value received after the mint's input fees (and swap fees), in `unit`. */
  amount: number;
}

export function normalizeMint(url: string): string {
  try {
    return normalizeMintUrl(url);
  } catch {
    return url.replace(/\/+$/, '');
  }
}

const amountOf = (p: Pick<Proof, 'amount'>): number => Amount.from(p.amount).toNumber();

// routstr/mint.py: 60 s base cooldown (or the mint's Retry-After when longer), doubling per
// consecutive 429, capped at 7 hours.
const RATE_LIMIT_BASE_MS = 60_000;
const RATE_LIMIT_MAX_MS = 7 * 3600_000;

export class Purse {
  private readonly wallets = new Map<string, Promise<Wallet>>();
  private readonly pools = new Map<string, Proof[]>();
  private readonly cooldowns = new Map<string, { untilMs: number; consecutive: number }>();

  constructor(private readonly clock: () => number = Date.now) {}

  private poolKey(mint: string, unit: string): string {
    return `${normalizeMint(mint)}|${unit}`;
  }

  /** A loaded cashu-ts Wallet for the mint as spelled (routstr's get_wallet is keyed by the exact URL). */
  wallet(mint: string, unit: string, fresh = false): Promise<Wallet> {
    const key = `${mint}|${unit}`;
    let w = this.wallets.get(key);
    if (!w || fresh) {
      const created = (async () => {
        const wallet = new Wallet(mint, { unit });
        await wallet.loadMint(true);
        return wallet;
      })();
      created.catch(() => this.wallets.delete(key));
      this.wallets.set(key, created);
      w = created;
    }
    return w;
  }

  /** run_mint_operation under fail_fast_mint_operations: refuse at once while cooling down; a 429 (re)starts the cooldown. */
  async run<T>(mint: string, op: () => Promise<T>): Promise<T> {
    const cooling = this.cooldowns.get(mint);
    const now = this.clock();
    if (cooling && cooling.untilMs > now) throw new MintCooldownError(mint, cooling.untilMs - now);
    try {
      const result = await op();
      this.cooldowns.delete(mint);
      return result;
    } catch (err) {
      if (isRateLimited(err)) {
        const consecutive = (cooling?.consecutive ?? 0) + 1;
        const base = Math.max(RATE_LIMIT_BASE_MS, err.retryAfterMs ?? 0);
        this.cooldowns.set(mint, { untilMs: this.clock() + Math.min(RATE_LIMIT_MAX_MS, base * 2 ** Math.min(consecutive - 1, 10)), consecutive });
      }
      throw err;
    }
  }

  pool(mint: string, unit: string): Proof[] {
    const key = this.poolKey(mint, unit);
    let p = this.pools.get(key);
    if (!p) {
      p = [];
      this.pools.set(key, p);
    }
    return p;
  }

  /**
   * _load_and_resolve_token_proofs: fetch the mint's keysets (every redemption), load new ones,
   * and resolve the token's proofs. Any failure to reach the mint here is "the issuing mint is
   * unreachable"; a keyset the mint does not know is a ValueError.
   */
  async resolve(token: string, mint: string, unit: string): Promise<{ wallet: Wallet; proofs: Proof[] }> {
    let wallet: Wallet;
    try {
      wallet = await this.run(mint, () => this.wallet(mint, unit));
      const listed = await this.run(mint, () => wallet.mint.getKeySets());
      const known = new Set(wallet.keyChain.getKeysets().map((k) => k.id));
      if (listed.keysets.some((k) => !known.has(k.id))) wallet = await this.wallet(mint, unit, true);
    } catch (err) {
      if (isRateLimited(err) || err instanceof MintCooldownError) throw redeemError.rateLimited(String((err as Error).message));
      throw redeemError.sourceUnreachable(String((err as Error)?.message ?? err));
    }
    try {
      return { wallet, proofs: getDecodedToken(token, wallet.keyChain.getKeysets().map((k) => k.id)).proofs };
    } catch {
      throw redeemError.failed('Cashu token references an unknown or ambiguous keyset');
    }
  }

  /** _redeem_same_mint: swap the whole token at its own mint into fresh proofs for the pool. */
  async redeem(token: string, mint: string, unit: string): Promise<Redeemed> {
    // routstr's recieve_token refuses a token mixing keysets before anything else.
    const { wallet, proofs } = await this.resolve(token, mint, unit);
    let received: Proof[];
    try {
      received = await this.run(mint, () => wallet.receive(proofs));
    } catch (err) {
      throw classifyMintFailure(err, 'Same-mint swap outcome is ambiguous; reconciliation required');
    }
    const amount = sumProofs(received).toNumber();
    if (amount <= 0) throw redeemError.zeroValue(`Redeemed token amount must be positive, got ${amount} ${unit}`);
    this.pool(mint, unit).push(...received);
    return { mint, unit, amount };
  }

  /**
   * Mint a token worth `amount` from the pool (swapping at the mint unless an exact set exists),
   * spelled with `mint` as given and without DLEQ proofs (routstr's send: include_dleq=False).
   */
  async issue(mint: string, unit: string, amount: number): Promise<string> {
    const pool = this.pool(mint, unit);
    const w = await this.wallet(mint, unit);
    const encode = (proofs: Proof[]) => getEncodedToken({ mint, unit, proofs: stripDleq(proofs) as Proof[] });
    // Every selection below takes proofs out of the pool synchronously, so concurrent
    // requests never spend the same ones.
    const exact = this.takeExact(w, pool, amount);
    if (exact) return encode(exact);
    pool.sort((a, b) => amountOf(b) - amountOf(a));
    const picked: Proof[] = [];
    let sum = 0;
    const fee = (ps: Proof[]) => {
      try {
        return w.getFeesForProofs(ps).toNumber();
      } catch {
        return 0;
      }
    };
    while (pool.length && sum < amount + fee(picked)) {
      const p = pool.shift()!;
      picked.push(p);
      sum += amountOf(p);
    }
    if (sum < amount + fee(picked)) {
      pool.push(...picked);
      throw new InsufficientPoolError(`pool holds ${sum} ${unit} at ${mint}, need ${amount} plus fees`);
    }
    try {
      const { keep, send } = await this.run(mint, () => w.send(amount, picked));
      pool.push(...keep);
      return encode(send);
    } catch (err) {
      // Refused at the connection: the swap never reached the mint, so its proofs are as they were
      // (nutshell's split invalidates its inputs only once the mint answered). Otherwise it may or
      // may not have happened: only put the proofs back if the mint still has them unspent.
      if (transportFailure(err) === 'refused') pool.push(...picked);
      else await this.restoreUnspent(mint, unit, picked);
      throw err;
    }
  }

  // Like nutshell's select_to_send: proofs summing to exactly `amount` go out as they are,
  // with no swap and so no input fee (which a fresh provider's pool could not cover).
  private takeExact(w: Wallet, pool: Proof[], amount: number): Proof[] | undefined {
    let picked: Proof[];
    try {
      picked = w.selectProofsToSend(pool, amount, false, true).send;
    } catch {
      return undefined;
    }
    if (!picked.length || picked.reduce((n, p) => n + amountOf(p), 0) !== amount) return undefined;
    const taken = new Set(picked.map((p) => p.secret));
    const rest = pool.filter((p) => !taken.has(p.secret));
    pool.splice(0, pool.length, ...rest);
    return picked;
  }

  /** Spend a token we issued ourselves, back into the pool (the invalidChange 'spent' knob, the refund sweep). */
  async respend(token: string, mint: string, unit: string): Promise<number> {
    const w = await this.wallet(mint, unit);
    const proofs = await w.receive(token);
    this.pool(mint, unit).push(...proofs);
    return sumProofs(proofs).toNumber();
  }

  private async restoreUnspent(mint: string, unit: string, proofs: Proof[]): Promise<void> {
    try {
      const w = await this.wallet(mint, unit);
      const states = await w.checkProofsStates(proofs);
      proofs.forEach((p, i) => {
        if (states[i]?.state === 'UNSPENT') this.pool(mint, unit).push(p);
      });
    } catch {
      // Mint unreachable: keep them aside rather than risk counting spent proofs.
    }
  }

  /** Pool contents per mint and unit. */
  balances(): { mint: string; unit: string; amount: number; proofs: number }[] {
    return [...this.pools.entries()].map(([key, proofs]) => {
      const [mint, unit] = key.split('|');
      return { mint, unit, amount: proofs.reduce((n, p) => n + amountOf(p), 0), proofs: proofs.length };
    });
  }
}

/**
 * A failed swap or melt at a mint, as the node classifies it: refused connection -> the
 * issuing mint is unreachable (token still good); a 429 or cooldown -> rate-limited; an answer
 * lost after sending -> the token may be spent, so it is consumed (`lostMeans`); a mint error ->
 * by its text.
 */
export function classifyMintFailure(err: unknown, lostMeans: string): RedeemError {
  if (err instanceof RedeemError) return err;
  if (isRateLimited(err) || err instanceof MintCooldownError) return redeemError.rateLimited(String((err as Error).message));
  const transport = transportFailure(err);
  if (transport === 'refused') return redeemError.sourceUnreachable();
  if (transport === 'lost') return redeemError.consumed(lostMeans);
  const text = mintErrorText(err);
  if (text !== null) return classifyText(text, false);
  return redeemError.internal(String((err as Error)?.message ?? err));
}
