// Proof states in SQLite: unspent -> pending(reason) -> spent, or pending -> unspent.
// One synchronous function per transition; an illegal transition throws ProofStateError and
// (inside db.transaction) rolls the whole transaction back. No await anywhere in here.
import { Amount, type Proof, type ProofLike } from '@cashu/cashu-ts';
import type { DB } from '../db/sqlite.ts';
import { ProofStateError } from './errors.ts';
import type { Coin } from './select.ts';

export type ProofState = 'unspent' | 'pending' | 'spent';
/**
 * Why a proof is pending: 'request' = in a token handed to a provider (reason_ref: the payment id,
 * one per attempt), 'swap' / 'melt' = input of a swap or melt (its id), 'send' = sent out as a token.
 */
export type PendingKind = 'request' | 'swap' | 'melt' | 'send';
export type Clock = () => number;

/** A proof as stored: everything cashu-ts needs to spend it, plus its state. */
export interface StoredProof {
  secret: string;
  mint: string;
  unit: string;
  keysetId: string;
  /** In the keyset's unit (sat or msat), always an integer. */
  amount: number;
  C: string;
  dleq: Proof['dleq'] | null;
  witness: Proof['witness'] | null;
  p2pkE: string | null;
  state: ProofState;
  reasonKind: PendingKind | null;
  reasonRef: string | null;
  source: string;
  createdAt: number;
}

/** One set of proofs pending for the same reason; what recovery walks on start. */
export interface PendingGroup {
  kind: PendingKind;
  ref: string;
  mint: string;
  unit: string;
  amount: number;
  count: number;
  since: number;
}

export interface BalanceRow {
  mint: string;
  unit: string;
  unspent: number;
  pending: number;
}

interface Row {
  secret: string; mint: string; unit: string; keyset_id: string; amount: number; c: string;
  dleq: string | null; witness: string | null; p2pk_e: string | null; state: ProofState;
  reason_kind: PendingKind | null; reason_ref: string | null; source: string; created_at: number;
}

function fromRow(r: Row): StoredProof {
  return {
    secret: r.secret, mint: r.mint, unit: r.unit, keysetId: r.keyset_id, amount: r.amount, C: r.c,
    dleq: r.dleq ? JSON.parse(r.dleq) : null,
    witness: r.witness ? JSON.parse(r.witness) : null,
    p2pkE: r.p2pk_e, state: r.state, reasonKind: r.reason_kind, reasonRef: r.reason_ref,
    source: r.source, createdAt: r.created_at,
  };
}

/** A proof amount as a safe integer (cashu-ts 4 may hand out Amount, bigint or string). */
export function amountOf(p: Pick<ProofLike, 'amount'>): number {
  return Amount.from(p.amount).toNumber();
}

/** Sum of proof amounts as a safe integer. */
export function sumAmounts(proofs: readonly Pick<ProofLike, 'amount'>[]): number {
  let total = 0;
  for (const p of proofs) total += amountOf(p);
  return total;
}

/** Back to the shape cashu-ts spends. */
export function toCashuProof(p: Pick<StoredProof, 'keysetId' | 'amount' | 'secret' | 'C' | 'witness' | 'p2pkE'> & { dleq?: StoredProof['dleq'] }): Proof {
  const proof: Proof = { id: p.keysetId, amount: Amount.from(p.amount), secret: p.secret, C: p.C };
  if (p.dleq) proof.dleq = p.dleq;
  if (p.witness) proof.witness = p.witness;
  if (p.p2pkE) proof.p2pk_e = p.p2pkE;
  return proof;
}

export type InsertState = 'unspent' | { kind: PendingKind; ref: string };

export interface UnspentTotal {
  mint: string;
  unit: string;
  unspent: number;
}

/** The state a cached read of the unspent set was taken at (ProofStore's caches). */
interface CacheStamp {
  version: number;
  dataVersion: number;
}

/**
 * An unspent coin as the store holds it in memory: what offline selection needs, and what a token
 * carries (so a payment is encoded without reading its proofs again; the DLEQ stays in the table).
 */
export interface HeldCoin extends Coin {
  C: string;
  witness: Proof['witness'] | null;
  p2pkE: string | null;
}

/** A stored proof as a held coin. */
export const heldCoin = (p: StoredProof): HeldCoin => ({ secret: p.secret, keysetId: p.keysetId, amountSat: p.amount, C: p.C, witness: p.witness, p2pkE: p.p2pkE });

/** Unspent coins of one mint+unit as read at `version` (see ProofStore.unspentCoins). */
export interface UnspentCoins {
  coins: readonly HeldCoin[];
  version: number;
}

const coinKey = (mint: string, unit: string) => `${mint}\n${unit}`;
/** SQLite's BINARY collation (ORDER BY mint, unit) for ASCII text: byte order. */
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Counts the writes that may change which proofs are unspent (an insert of unspent proofs,
 * unspent -> pending, pending -> unspent, unspent -> spent), shared by every ProofStore on the
 * same connection; bumped before the write, so a rollback can only make a cached read look
 * stale, never fresh. Other connections' commits show in PRAGMA data_version.
 */
const unspentEpochs = new WeakMap<DB, { n: number }>();

/**
 * The proof table. Construct once per DB connection (statements are prepared once).
 * Every method is synchronous and safe to call inside an outer `db.transaction(...)`, where
 * it joins that transaction (better-sqlite3 nests as savepoints).
 */
export class ProofStore {
  private readonly s;
  /** Committed unspent coins per mint+unit, with the epoch and data_version they were read at. */
  private readonly coinCache = new Map<string, { coins: readonly HeldCoin[]; version: number; dataVersion: number }>();
  /** Unspent sums per mint+unit, cached like the coins. */
  private totalsCache: { totals: readonly UnspentTotal[]; version: number; dataVersion: number } | null = null;
  /** Every write to wallet_proofs goes through this class: the caches above rely on it. */
  private readonly epoch: { n: number };

  constructor(readonly db: DB, private readonly clock: Clock = Date.now) {
    let epoch = unspentEpochs.get(db);
    if (!epoch) unspentEpochs.set(db, (epoch = { n: 0 }));
    this.epoch = epoch;
    this.s = {
      insert: db.prepare(`INSERT INTO wallet_proofs (secret, mint, unit, keyset_id, amount, c, dleq, witness, p2pk_e, state,
        reason_kind, reason_ref, source, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`),
      unspent: db.prepare(`SELECT * FROM wallet_proofs WHERE mint = ? AND unit = ? AND state = 'unspent' ORDER BY amount`),
      unspentAll: db.prepare(`SELECT * FROM wallet_proofs WHERE state = 'unspent' ORDER BY mint, unit, amount`),
      pendingAt: db.prepare(`SELECT * FROM wallet_proofs WHERE mint = ? AND unit = ? AND state = 'pending' ORDER BY reason_ref, amount`),
      toPending: db.prepare(`UPDATE wallet_proofs SET state = 'pending', reason_kind = ?, reason_ref = ?, updated_at = ?
        WHERE secret = ? AND state = 'unspent'`),
      spentByRefAmounts: db.prepare(`UPDATE wallet_proofs SET state = 'spent', updated_at = ? WHERE reason_ref = ? AND state = 'pending' RETURNING amount`).pluck(),
      spentBySecret: db.prepare(`UPDATE wallet_proofs SET state = 'spent', updated_at = ? WHERE secret = ? AND state = 'pending'`),
      releaseByRef: db.prepare(`UPDATE wallet_proofs SET state = 'unspent', reason_kind = NULL, reason_ref = NULL, updated_at = ?
        WHERE reason_ref = ? AND state = 'pending'`),
      releaseBySecret: db.prepare(`UPDATE wallet_proofs SET state = 'unspent', reason_kind = NULL, reason_ref = NULL, updated_at = ?
        WHERE secret = ? AND state = 'pending'`),
      spentUnspent: db.prepare(`UPDATE wallet_proofs SET state = 'spent', reason_kind = 'send', reason_ref = ?, updated_at = ?
        WHERE secret = ? AND state = 'unspent'`),
      byRef: db.prepare(`SELECT * FROM wallet_proofs WHERE reason_ref = ? ORDER BY amount`),
      pendingByRef: db.prepare(`SELECT * FROM wallet_proofs WHERE reason_ref = ? AND state = 'pending' ORDER BY amount`),
      bySecret: db.prepare(`SELECT * FROM wallet_proofs WHERE secret = ?`),
      groups: db.prepare(`SELECT reason_kind AS kind, reason_ref AS ref, mint, unit, SUM(amount) AS amount, COUNT(*) AS count,
        MIN(updated_at) AS since FROM wallet_proofs WHERE state = 'pending' GROUP BY reason_kind, reason_ref, mint, unit ORDER BY since`),
      balances: db.prepare(`SELECT mint, unit, SUM(CASE WHEN state = 'unspent' THEN amount ELSE 0 END) AS unspent,
        SUM(CASE WHEN state = 'pending' THEN amount ELSE 0 END) AS pending FROM wallet_proofs
        WHERE state IN ('unspent', 'pending') GROUP BY mint, unit ORDER BY mint, unit`),
      coins: db.prepare(`SELECT secret, keyset_id AS keysetId, amount AS amountSat, c AS C, witness, p2pk_e AS p2pkE FROM wallet_proofs
        WHERE mint = ? AND unit = ? AND state = 'unspent'`),
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      unspentTotals: db.prepare(`SELECT mint, unit, SUM(amount) AS unspent FROM wallet_proofs WHERE state = 'unspent' GROUP BY mint, unit ORDER BY mint, unit`),
      denoms: db.prepare(`SELECT amount, COUNT(*) AS count FROM wallet_proofs WHERE mint = ? AND unit = ? AND state = 'unspent'
        GROUP BY amount ORDER BY amount`),
    };
  }

  /** Add new proofs (freshly minted, swapped or received). Throws if a secret is already stored. */
  insertProofs(proofs: readonly ProofLike[], mint: string, unit: string, state: InsertState, source: string): StoredProof[] {
    const now = this.clock();
    const kind = state === 'unspent' ? null : state.kind;
    const ref = state === 'unspent' ? null : state.ref;
    const stored: StoredProof[] = [];
    if (!kind) this.epoch.n++;
    this.db.transaction(() => {
      for (const p of proofs) {
        const amount = amountOf(p);
        if (!Number.isSafeInteger(amount) || amount <= 0) throw new ProofStateError(`proof amount ${String(p.amount)} is not a positive integer`);
        try {
          this.s.insert.run(p.secret, mint, unit, p.id, amount, p.C, p.dleq ? JSON.stringify(p.dleq) : null,
            p.witness ? JSON.stringify(p.witness) : null, p.p2pk_e ?? null, kind ? 'pending' : 'unspent', kind, ref, source, now, now);
        } catch (err) {
          if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new ProofStateError('proof already stored (duplicate secret)');
          throw err;
        }
        stored.push({ secret: p.secret, mint, unit, keysetId: p.id, amount, C: p.C, dleq: p.dleq ?? null, witness: p.witness ?? null,
          p2pkE: p.p2pk_e ?? null, state: kind ? 'pending' : 'unspent', reasonKind: kind, reasonRef: ref, source, createdAt: now });
      }
    })();
    return stored;
  }

  /** Unspent proofs of one mint and unit, smallest first (indexed; no mint call). */
  selectUnspent(mint: string, unit: string): StoredProof[] {
    return (this.s.unspent.all(mint, unit) as Row[]).map(fromRow);
  }

  /**
   * What offline selection needs of the unspent proofs of one mint and unit (secret, keyset,
   * amount; smallest first). Served from memory while no write that may change which proofs are
   * unspent ran since the last read, through any ProofStore on this connection or on another
   * connection (PRAGMA data_version); else read again. Inside an open transaction it always
   * reads and caches nothing, since that transaction may still roll back. The DB stays the
   * truth: movePending refuses a proof that is not unspent. `fresh` reads again regardless.
   * Do not mutate the result.
   */
  unspentCoins(mint: string, unit: string, opts: { fresh?: boolean } = {}): UnspentCoins {
    const k = coinKey(mint, unit);
    const stamp = this.stamp();
    const cached = this.coinCache.get(k);
    if (!opts.fresh && this.current(cached, stamp)) return cached!;
    const coins = (this.s.coins.all(mint, unit) as (Omit<HeldCoin, 'witness'> & { witness: string | null })[])
      .map((c): HeldCoin => (c.witness === null ? (c as HeldCoin) : { ...c, witness: JSON.parse(c.witness) }));
    if (this.db.inTransaction) this.coinCache.delete(k);
    else this.coinCache.set(k, { coins, ...stamp });
    return { coins, version: stamp.version };
  }

  /**
   * After a transaction has COMMITTED whose only change to the unspent set was one
   * movePending(`secrets`) of coins read from unspentCoins at `version`: drop them from the cached
   * coins (and their amounts from the cached sums) instead of reading them all again. Anything else
   * (another such write meanwhile, an outer transaction still open, a coin not in the cache) drops
   * the caches instead.
   */
  unspentTaken(mint: string, unit: string, version: number, secrets: readonly string[]): void {
    const cached = this.coinCache.get(coinKey(mint, unit));
    if (!cached) return void (this.totalsCache = null);
    const gone = new Set(secrets);
    const coins = cached.coins.filter((c) => !gone.has(c.secret));
    const takenSat = cached.coins.reduce((a, c) => (gone.has(c.secret) ? a + c.amountSat : a), 0);
    this.followWrite(mint, unit, version, coins.length === cached.coins.length - gone.size ? { coins, deltaSat: -takenSat } : null);
  }

  /** Where this connection's writes to the unspent set stand: pass it to unspentAdded after the commit. */
  unspentVersion(): number {
    return this.epoch.n;
  }

  /**
   * After a transaction has COMMITTED whose only change to the unspent set was one insertProofs of
   * `added` as unspent (a swap's outputs), with the caches read at `version` (unspentVersion before
   * it): add them to the cached coins and sums instead of reading every unspent proof again.
   * Anything else drops the caches instead, as unspentTaken does.
   */
  unspentAdded(mint: string, unit: string, version: number, added: readonly StoredProof[]): void {
    const cached = this.coinCache.get(coinKey(mint, unit));
    if (!cached) return void (this.totalsCache = null);
    const fits = added.every((p) => p.state === 'unspent' && p.mint === mint && p.unit === unit);
    // Smallest first, a new coin after the ones of its amount already held: the index's order.
    const coins = [...cached.coins, ...added.map(heldCoin)].sort((a, b) => a.amountSat - b.amountSat);
    this.followWrite(mint, unit, version, fits ? { coins, deltaSat: added.reduce((a, p) => a + p.amount, 0) } : null);
  }

  /**
   * The caches after a committed write to `mint`+`unit`'s unspent coins alone, read at `version`:
   * `next` (its coins now, and what their sum changed by), or null when the write was not such a
   * one. They are kept only when nothing else wrote since they were read (one bump of the epoch)
   * and no outer transaction is open; else dropped, to be read again.
   */
  private followWrite(mint: string, unit: string, version: number, next: { coins: readonly HeldCoin[]; deltaSat: number } | null): void {
    const k = coinKey(mint, unit);
    const cached = this.coinCache.get(k)!;
    const totals = this.totalsCache;
    this.totalsCache = null;
    if (!next || this.db.inTransaction || cached.version !== version || this.epoch.n !== version + 1) {
      this.coinCache.delete(k);
      return;
    }
    this.coinCache.set(k, { coins: next.coins, version: this.epoch.n, dataVersion: cached.dataVersion });
    // Every other mint+unit's coins read at `version` are still true.
    for (const [other, c] of this.coinCache) if (other !== k && c.version === version) this.coinCache.set(other, { ...c, version: this.epoch.n });
    if (totals && totals.version === version && totals.dataVersion === cached.dataVersion) {
      const row = totals.totals.find((t) => t.mint === mint && t.unit === unit);
      const after = row
        ? totals.totals.map((t) => (t === row ? { ...t, unspent: t.unspent + next.deltaSat } : t))
        : [...totals.totals, { mint, unit, unspent: next.deltaSat }].sort((x, y) => (x.mint === y.mint ? cmp(x.unit, y.unit) : cmp(x.mint, y.mint)));
      // A mint+unit with nothing unspent has no row, as the table's GROUP BY has none.
      this.totalsCache = { totals: after.filter((t) => t.unspent > 0), version: this.epoch.n, dataVersion: cached.dataVersion };
    }
  }

  /** Pending proofs of one mint and unit, grouped by reason. */
  selectPending(mint: string, unit: string): StoredProof[] {
    return (this.s.pendingAt.all(mint, unit) as Row[]).map(fromRow);
  }

  /** Every unspent proof, grouped by mint and unit. */
  allUnspent(): StoredProof[] {
    return (this.s.unspentAll.all() as Row[]).map(fromRow);
  }

  /** How many unspent proofs of each denomination a mint+unit has (for the small-denomination reserve). */
  denominations(mint: string, unit: string): { amount: number; count: number }[] {
    return this.s.denoms.all(mint, unit) as { amount: number; count: number }[];
  }

  /**
   * unspent -> pending(kind, ref), all or nothing, in one transaction. Throws ProofStateError if
   * any proof is not unspent any more, so two concurrent takers can never get the same proof.
   */
  movePending(secrets: readonly string[], kind: PendingKind, ref: string): void {
    const now = this.clock();
    this.epoch.n++;
    this.db.transaction(() => {
      for (const secret of secrets) {
        if (this.s.toPending.run(kind, ref, now, secret).changes !== 1) throw new ProofStateError(`proof is not unspent (wanted for ${kind} ${ref})`);
      }
    })();
  }

  /** pending(ref) -> spent for every proof of that reason. Returns how many and their sum. */
  markSpent(ref: string): { count: number; amount: number } {
    const spent = this.markSpentIfPending(ref);
    if (spent.count === 0) throw new ProofStateError(`no pending proofs for ${ref}`);
    return spent;
  }

  /** pending(ref) -> spent for every proof of that reason, if any are pending (none is no error). */
  markSpentIfPending(ref: string): { count: number; amount: number } {
    // One statement (the settlement's path runs it): the update says which proofs it moved.
    const amounts = this.s.spentByRefAmounts.all(this.clock(), ref) as number[];
    return { count: amounts.length, amount: amounts.reduce((a, n) => a + n, 0) };
  }

  /** pending -> spent for these proofs only (e.g. NUT-07 says some of a set are spent). */
  markSecretsSpent(secrets: readonly string[]): void {
    const now = this.clock();
    this.db.transaction(() => {
      for (const secret of secrets) {
        if (this.s.spentBySecret.run(now, secret).changes !== 1) throw new ProofStateError('proof is not pending');
      }
    })();
  }

  /**
   * unspent -> spent directly, for proofs the mint reports spent although we never sent them
   * (only recovery and the invariant check use this; record a ledger `loss` in the same transaction).
   */
  markUnspentLost(secrets: readonly string[], ref: string): void {
    const now = this.clock();
    this.epoch.n++;
    this.db.transaction(() => {
      for (const secret of secrets) {
        if (this.s.spentUnspent.run(ref, now, secret).changes !== 1) throw new ProofStateError('proof is not unspent');
      }
    })();
  }

  /** pending(ref) -> unspent (the payment never left, or the mint says they are unspent). Returns the count. */
  releasePending(ref: string): number {
    const now = this.clock();
    this.epoch.n++;
    let n = 0;
    this.db.transaction(() => {
      n = this.s.releaseByRef.run(now, ref).changes;
    })();
    return n;
  }

  /** pending -> unspent for these proofs only. */
  releaseSecrets(secrets: readonly string[]): void {
    const now = this.clock();
    this.epoch.n++;
    this.db.transaction(() => {
      for (const secret of secrets) {
        if (this.s.releaseBySecret.run(now, secret).changes !== 1) throw new ProofStateError('proof is not pending');
      }
    })();
  }

  /** The proofs currently pending for this reason. */
  pendingOf(ref: string): StoredProof[] {
    return (this.s.pendingByRef.all(ref) as Row[]).map(fromRow);
  }

  /** Every proof ever tied to this reason (pending or spent). */
  proofsOf(ref: string): StoredProof[] {
    return (this.s.byRef.all(ref) as Row[]).map(fromRow);
  }

  get(secret: string): StoredProof | undefined {
    const row = this.s.bySecret.get(secret) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** Every pending set, oldest first: what recovery resolves on start. */
  pendingGroups(): PendingGroup[] {
    return this.s.groups.all() as PendingGroup[];
  }

  /** Unspent and pending sums per mint and unit. */
  balances(): BalanceRow[] {
    return this.s.balances.all() as BalanceRow[];
  }

  /**
   * Unspent sums per mint and unit - what a request can spend - served from memory while no write
   * changed the unspent set (as unspentCoins): the router asks on every request, and a burst of
   * admissions would otherwise each sum the whole table. Do not mutate the result.
   */
  unspentTotals(): readonly UnspentTotal[] {
    const stamp = this.stamp();
    if (this.current(this.totalsCache, stamp)) return this.totalsCache!.totals;
    const totals = this.s.unspentTotals.all() as UnspentTotal[];
    this.totalsCache = this.db.inTransaction ? null : { totals, ...stamp };
    return totals;
  }

  /** Where the unspent set stands now: this process's writes (epoch) and any connection's (data_version). */
  private stamp(): CacheStamp {
    return { version: this.epoch.n, dataVersion: this.s.dataVersion.get() as number };
  }

  /** A read cached at `stamp`'s state, outside a transaction (one still open may roll back), is still true. */
  private current(cached: CacheStamp | null | undefined, stamp: CacheStamp): boolean {
    return !!cached && cached.version === stamp.version && cached.dataVersion === stamp.dataVersion && !this.db.inTransaction;
  }
}
