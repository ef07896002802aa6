// The provider's earnings: a pool of Cashu proofs per mint and unit, kept in memory, with a
// cashu-ts Wallet per mint and unit to redeem incoming tokens and mint change at the mint.
import {
  Amount,
  getEncodedToken,
  getTokenMetadata,
  MintOperationError,
  NetworkError,
  normalizeMintUrl,
  sumProofs,
  Wallet,
  type Proof,
} from '@cashu/cashu-ts';

/** Why a token could not be redeemed; `code` follows routstr's classify_redemption_error. */
export class RedeemError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
    /** Whether the token is still spendable (routstr then echoes it back in X-Cashu). */
    readonly unspent: boolean,
  ) {
    super(message);
    this.name = 'RedeemError';
  }
}

export class InsufficientPoolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InsufficientPoolError';
  }
}

export interface Redeemed {
  mint: string;
  unit: string;
  /** Value received after the mint's input fees, in `unit`. */
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

function isSpentError(err: unknown): boolean {
  if (err instanceof MintOperationError && err.code === 11001) return true;
  return /already spent|token spent|proofs? (is|are) spent|spent/i.test(String((err as Error)?.message ?? ''));
}

function isUnreachable(err: unknown): boolean {
  if (err instanceof NetworkError) return true;
  const msg = String((err as Error)?.message ?? '');
  return /ECONNREFUSED|fetch failed|network|socket hang up|ECONNRESET/i.test(msg) || (err as { status?: number })?.status === 503;
}

export class Purse {
  private readonly wallets = new Map<string, Promise<Wallet>>();
  private readonly pools = new Map<string, Proof[]>();

  private key(mint: string, unit: string): string {
    return `${normalizeMint(mint)}|${unit}`;
  }

  private wallet(mint: string, unit: string, fresh = false): Promise<Wallet> {
    const key = this.key(mint, unit);
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

  /** Run a wallet operation; after a failure that is not a spent token, reload the mint's keysets once and retry. */
  private async withWallet<T>(mint: string, unit: string, op: (w: Wallet) => Promise<T>): Promise<T> {
    try {
      return await op(await this.wallet(mint, unit));
    } catch (err) {
      if (isSpentError(err) || isUnreachable(err)) throw err;
      return await op(await this.wallet(mint, unit, true));
    }
  }

  private pool(mint: string, unit: string): Proof[] {
    const key = this.key(mint, unit);
    let p = this.pools.get(key);
    if (!p) {
      p = [];
      this.pools.set(key, p);
    }
    return p;
  }

  /** Swap a whole token at its mint into fresh proofs for the pool. */
  async redeem(token: string): Promise<Redeemed> {
    let meta: ReturnType<typeof getTokenMetadata>;
    try {
      meta = getTokenMetadata(token);
    } catch {
      throw new RedeemError(400, 'invalid_token', 'invalid_cashu_token', 'Invalid Cashu token', false);
    }
    const mint = normalizeMint(meta.mint);
    const unit = meta.unit ?? 'sat';
    let proofs: Proof[];
    try {
      proofs = await this.withWallet(mint, unit, (w) => w.receive(token));
    } catch (err) {
      if (isSpentError(err)) {
        throw new RedeemError(400, 'token_already_spent', 'cashu_token_already_spent', 'Cashu token already spent', false);
      }
      if (isUnreachable(err)) {
        throw new RedeemError(503, 'mint_unreachable', 'cashu_mint_unreachable', 'Cashu mint is unreachable', true);
      }
      throw new RedeemError(400, 'cashu_error', 'cashu_token_redemption_failed', 'Failed to redeem Cashu token', true);
    }
    const amount = sumProofs(proofs).toNumber();
    if (amount <= 0) {
      throw new RedeemError(400, 'cashu_error', 'cashu_token_zero_value', 'Failed to redeem Cashu token: token yielded no value', false);
    }
    this.pool(mint, unit).push(...proofs);
    return { mint, unit, amount };
  }

  /** Mint a token worth `amount` from the pool (swapping at the mint unless an exact set exists). */
  async issue(mint: string, unit: string, amount: number): Promise<string> {
    const pool = this.pool(mint, unit);
    const w = await this.wallet(mint, unit);
    // Every selection below takes proofs out of the pool synchronously, so concurrent
    // requests never spend the same ones.
    const exact = this.takeExact(w, pool, amount);
    if (exact) return getEncodedToken({ mint, unit, proofs: exact });
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
      const { keep, send } = await this.withWallet(mint, unit, (wallet) => wallet.send(amount, picked));
      pool.push(...keep);
      return getEncodedToken({ mint, unit, proofs: send });
    } catch (err) {
      // The swap may or may not have happened; only put the proofs back if the mint still has them unspent.
      await this.restoreUnspent(mint, unit, picked);
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

  /** Spend a token we issued ourselves, back into the pool (the invalidChange 'spent' knob). */
  async respend(token: string): Promise<void> {
    await this.redeem(token);
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
