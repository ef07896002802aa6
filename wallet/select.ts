// Offline proof selection: which of the proofs we hold make up a token, with no mint call.
//
// Cashu amounts are powers of two. For powers of two, taking the largest denomination that
// still fits, as many as fit, finds an exact sum whenever one exists and uses the fewest
// proofs (any set of smaller powers of two summing past a denomination contains a subset that
// sums to it exactly, so it can be traded for one coin). So exact selection is greedy, and
// the search below only loops over the small range of fee and overpayment values.
//
// Fees (NUT-02): whoever redeems a token pays the keyset's input fee, ceil(n * ppk / 1000) for
// n proofs, out of the token's value. A Routstr node credits `value - input fee`, so a token
// meant to pay `amountSat` must be worth `amountSat + fee(n)`, where n is its own proof count.

/** A proof as selection sees it: nothing but what decides the choice. */
export interface Coin {
  secret: string;
  keysetId: string;
  amountSat: number;
}

export interface SelectPolicy {
  /** Accept a token worth more than needed (the node returns the rest as change). */
  allowOverpay: boolean;
  /** Largest overpayment accepted, in sats, on top of amount + input fee. */
  maxOverpaySat: number;
}

export interface Selection<C extends Coin = Coin> {
  coins: C[];
  keysetId: string;
  /** Face value of the token: amountSat + feeSat + overpaySat. */
  totalSat: number;
  /** Input fee the redeemer pays the mint for these proofs. */
  feeSat: number;
  /** Value beyond amount + fee; 0 for an exact token. */
  overpaySat: number;
}

export const EXACT_ONLY: SelectPolicy = { allowOverpay: false, maxOverpaySat: 0 };

/** Default: exact first; else overpay by at most max(4 sat, 1/8 of the amount). */
export function defaultPolicy(amountSat: number): SelectPolicy {
  return { allowOverpay: true, maxOverpaySat: Math.max(4, Math.ceil(amountSat / 8)) };
}

/** Input fee for spending `count` proofs of a keyset charging `feePpk` per input (NUT-02). */
export function inputFeeSat(count: number, feePpk: number): number {
  return Math.ceil((count * feePpk) / 1000);
}

/**
 * Choose proofs worth exactly `amountSat` + their own input fee, else (when the policy allows)
 * the cheapest slight overpayment; all from one keyset. Returns null when nothing fits, in
 * which case the caller swaps at the mint. Pure; never mutates its inputs.
 */
export function selectOffline<C extends Coin>(
  coins: readonly C[],
  amountSat: number,
  feePpkByKeyset: ReadonlyMap<string, number>,
  policy: SelectPolicy,
): Selection<C> | null {
  if (!Number.isSafeInteger(amountSat) || amountSat <= 0) throw new RangeError(`amount must be a positive integer, got ${amountSat}`);
  const byKeyset = new Map<string, C[]>();
  for (const coin of coins) {
    const list = byKeyset.get(coin.keysetId);
    if (list) list.push(coin);
    else byKeyset.set(coin.keysetId, [coin]);
  }
  let best: Selection<C> | null = null;
  for (const [keysetId, list] of byKeyset) {
    const ppk = feePpkByKeyset.get(keysetId);
    if (ppk === undefined) continue; // unknown keyset: cannot price its fee, so never offer it
    const found = selectInKeyset(list, keysetId, amountSat, ppk, policy);
    if (found && (!best || better(found, best))) best = found;
  }
  return best;
}

/**
 * A token that must contain every coin of `kept` (proofs a provider has seen: handing them to
 * anyone else, or back to the unspent set, would trust that provider not to spend them) plus coins
 * of the same keyset to reach `amountSat` + the input fee of the whole token. The overpayment that
 * `kept` alone forces is accepted whatever the policy; null when nothing fits. Pure.
 */
export function selectIncluding<C extends Coin>(
  kept: readonly C[],
  coins: readonly C[],
  amountSat: number,
  feePpkByKeyset: ReadonlyMap<string, number>,
  policy: SelectPolicy,
): Selection<C> | null {
  if (kept.length === 0) return selectOffline(coins, amountSat, feePpkByKeyset, policy);
  if (!Number.isSafeInteger(amountSat) || amountSat <= 0) throw new RangeError(`amount must be a positive integer, got ${amountSat}`);
  const keysetId = kept[0].keysetId;
  const ppk = feePpkByKeyset.get(keysetId);
  if (ppk === undefined || kept.some((c) => c.keysetId !== keysetId)) return null;
  const keptSat = kept.reduce((a, c) => a + c.amountSat, 0);
  const keptFee = inputFeeSat(kept.length, ppk);
  if (keptSat >= amountSat + keptFee) {
    return { coins: [...kept], keysetId, totalSat: keptSat, feeSat: keptFee, overpaySat: keptSat - amountSat - keptFee };
  }
  const same = coins.filter((c) => c.keysetId === keysetId);
  const buckets = bucketByAmount(same);
  const maxExtra = (policy.allowOverpay ? policy.maxOverpaySat : 0) + inputFeeSat(kept.length + same.length, ppk);
  // extra = fee + overpay, as in selectInKeyset; the kept coins count towards the total and the fee.
  for (let extra = 0; extra <= maxExtra; extra++) {
    const picked = greedyExact(buckets, amountSat + extra - keptSat);
    if (!picked) continue;
    const feeSat = inputFeeSat(kept.length + picked.length, ppk);
    if (feeSat > extra) continue;
    const overpaySat = extra - feeSat;
    if (overpaySat > 0 && !(policy.allowOverpay && overpaySat <= policy.maxOverpaySat)) continue;
    return { coins: [...kept, ...picked], keysetId, totalSat: amountSat + extra, feeSat, overpaySat };
  }
  return null;
}

function better(a: Selection, b: Selection): boolean {
  if (a.totalSat !== b.totalSat) return a.totalSat < b.totalSat;
  return a.coins.length < b.coins.length;
}

function selectInKeyset<C extends Coin>(coins: C[], keysetId: string, amountSat: number, ppk: number, policy: SelectPolicy): Selection<C> | null {
  const buckets = bucketByAmount(coins);
  const maxExtra = (policy.allowOverpay ? policy.maxOverpaySat : 0) + inputFeeSat(coins.length, ppk);
  // extra = fee + overpay. The first extra that works is the cheapest token; overpay is 0
  // exactly when the greedy count's fee equals extra.
  for (let extra = 0; extra <= maxExtra; extra++) {
    const picked = greedyExact(buckets, amountSat + extra);
    if (!picked) continue;
    const feeSat = inputFeeSat(picked.length, ppk);
    if (feeSat > extra) continue;
    const overpaySat = extra - feeSat;
    if (overpaySat > 0 && !(policy.allowOverpay && overpaySat <= policy.maxOverpaySat)) continue;
    return { coins: picked, keysetId, totalSat: amountSat + extra, feeSat, overpaySat };
  }
  return null;
}

interface Bucket<C> {
  amountSat: number;
  coins: C[];
}

/** Coins grouped by amount, largest first. */
function bucketByAmount<C extends Coin>(coins: C[]): Bucket<C>[] {
  const map = new Map<number, C[]>();
  for (const c of coins) {
    const list = map.get(c.amountSat);
    if (list) list.push(c);
    else map.set(c.amountSat, [c]);
  }
  return [...map.entries()].sort((a, b) => b[0] - a[0]).map(([amountSat, list]) => ({ amountSat, coins: list }));
}

/** Largest-first greedy; exact and minimal in count for power-of-two amounts. */
function greedyExact<C>(buckets: Bucket<C>[], target: number): C[] | null {
  let rest = target;
  const picked: C[] = [];
  for (const b of buckets) {
    if (rest === 0) break;
    if (b.amountSat > rest) continue;
    const n = Math.min(b.coins.length, Math.floor(rest / b.amountSat));
    for (let i = 0; i < n; i++) picked.push(b.coins[i]);
    rest -= n * b.amountSat;
  }
  return rest === 0 ? picked : null;
}

/** Powers of two summing to `amountSat`, largest first (the standard Cashu split). */
export function splitAmount(amountSat: number): number[] {
  if (!Number.isSafeInteger(amountSat) || amountSat < 0) throw new RangeError(`cannot split ${amountSat}`);
  const out: number[] = [];
  for (let bit = 2 ** 52; bit >= 1; bit /= 2) if (Math.floor(amountSat / bit) % 2 === 1) out.push(bit);
  return out;
}
