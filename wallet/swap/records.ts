// The `wallet_swaps` table: one row per swap of any purpose, with the blinded outputs it sends
// and its retry state. The only code that reads or writes the table or knows how its outputs are
// stored (as cashu-ts persists a swap with one serializeSwapPreview / deserializeSwapPreview pair).
//   outputs: {"v":2,"keysetId","outputs":[SerializedOutputData...],"earlier":[[...]]}
//   - `outputs` are what the next attempt sends: written BEFORE the first mint call;
//   - `earlier` are outputs an earlier attempt sent before a keyset rotation replaced them: an
//     unanswered attempt may have had them signed, so NUT-09 restore asks for them too.
//   Rows written before v2 hold {"keysetId","keep":"<JSON of SerializedOutputData[]>"}.
// Synchronous; call inside the transaction that moves the proofs the row describes.
import type { SerializedOutputData } from '@cashu/cashu-ts';
import type { DB } from '../../db/sqlite.ts';
import type { Clock } from '../store.ts';
import type { ProofJson } from './steps.ts';

export const SWAP_PURPOSES = ['receive', 'change', 'refund', 'split', 'reclaim'] as const;
/**
 * - receive: a token someone gave us (`wallet receive`)
 * - change, refund: a provider's change or refund token (the change queue)
 * - split: own proofs into the denominations a token or the reserve needs
 * - reclaim: own proofs a provider saw but never redeemed
 */
export type SwapPurpose = (typeof SWAP_PURPOSES)[number];
export type SwapState = 'prepared' | 'done' | 'failed' | 'lost';

/** Blinded outputs as stored. */
export interface SwapOutputs {
  keysetId: string;
  outputs: SerializedOutputData[];
  earlier: SerializedOutputData[][];
}

export interface SwapRecord extends SwapOutputs {
  id: string;
  mint: string;
  unit: string;
  purpose: SwapPurpose;
  /** What the swap is for: a payment id (reclaim, change), or null. */
  ref: string | null;
  state: SwapState;
  /** Proofs from a token someone gave us; own inputs are the proofs pending(swap, id). */
  foreign: ProofJson[];
  inputsAmount: number;
  fee: number;
  attempts: number;
  /** A mint call is out (still 1 after a crash). */
  inFlight: boolean;
  /** An attempt got no usable answer: the mint may already have done the swap. */
  uncertain: boolean;
  nextAt: number;
  error: string | null;
}

export interface NewSwap {
  id: string;
  mint: string;
  unit: string;
  purpose: SwapPurpose;
  ref: string | null;
  foreign: readonly ProofJson[];
  inputsAmount: number;
  fee: number;
  keysetId: string;
  outputs: SerializedOutputData[];
}

/** The stored form of a swap's outputs. */
export function serializeSwapOutputs(o: SwapOutputs): string {
  return JSON.stringify({ v: 2, keysetId: o.keysetId, outputs: o.outputs, ...(o.earlier.length ? { earlier: o.earlier } : {}) });
}

/** Back from the stored form (this one's, or the one rows had before v2). */
export function deserializeSwapOutputs(json: string | null): SwapOutputs {
  if (!json) return { keysetId: '', outputs: [], earlier: [] };
  const o = JSON.parse(json) as { v?: number; keysetId: string; outputs?: SerializedOutputData[]; keep?: string; earlier?: SerializedOutputData[][] };
  const outputs = o.v === 2 ? (o.outputs ?? []) : (JSON.parse(o.keep ?? '[]') as SerializedOutputData[]);
  return { keysetId: o.keysetId, outputs, earlier: o.earlier ?? [] };
}

interface Row {
  id: string; mint: string; unit: string; purpose: SwapPurpose; ref: string | null; state: SwapState;
  foreign_inputs: string | null; inputs_amount: number; fee: number; outputs: string | null; error: string | null;
  attempts: number; in_flight: number; uncertain: number; next_at: number;
}

function fromRow(r: Row): SwapRecord {
  return {
    id: r.id, mint: r.mint, unit: r.unit, purpose: r.purpose, ref: r.ref, state: r.state,
    foreign: r.foreign_inputs ? (JSON.parse(r.foreign_inputs) as ProofJson[]) : [],
    inputsAmount: r.inputs_amount, fee: r.fee, error: r.error,
    attempts: r.attempts, inFlight: r.in_flight === 1, uncertain: r.uncertain === 1, nextAt: r.next_at,
    ...deserializeSwapOutputs(r.outputs),
  };
}

/** A done swap whose "foreign" inputs (a token someone gave us) were in fact our own proofs. */
export interface OwnInputsSwap {
  swapId: string;
  purpose: SwapPurpose;
  ref: string | null;
  mint: string;
  unit: string;
  /** Value of our own proofs among its inputs. */
  amount: number;
  count: number;
}

export class SwapRecords {
  private readonly s;

  constructor(db: DB, private readonly clock: Clock) {
    this.s = {
      insert: db.prepare(`INSERT INTO wallet_swaps (id, mint, unit, purpose, ref, state, foreign_inputs, inputs_amount, fee, outputs, next_at, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, 'prepared', ?, ?, ?, ?, ?, ?, ?)`),
      get: db.prepare('SELECT * FROM wallet_swaps WHERE id = ?'),
      setState: db.prepare('UPDATE wallet_swaps SET state = ?, error = ?, updated_at = ? WHERE id = ?'),
      setFee: db.prepare('UPDATE wallet_swaps SET fee = ?, updated_at = ? WHERE id = ?'),
      setOutputs: db.prepare('UPDATE wallet_swaps SET outputs = ?, fee = ?, updated_at = ? WHERE id = ?'),
      sending: db.prepare(`UPDATE wallet_swaps SET attempts = attempts + 1, in_flight = 1, uncertain = MAX(uncertain, in_flight), updated_at = ? WHERE id = ?`),
      answered: db.prepare('UPDATE wallet_swaps SET in_flight = 0, uncertain = MAX(uncertain, ?), next_at = ?, error = ?, updated_at = ? WHERE id = ?'),
      due: db.prepare(`SELECT id FROM wallet_swaps WHERE state = 'prepared' AND next_at <= ? ORDER BY next_at, created_at`),
      open: db.prepare(`SELECT id FROM wallet_swaps WHERE state = 'prepared' ORDER BY created_at`),
      ownInputs: db.prepare(`SELECT s.id AS swapId, s.purpose, s.ref, s.mint, s.unit, SUM(p.amount) AS amount, COUNT(*) AS count
        FROM wallet_swaps s, json_each(s.foreign_inputs) j JOIN wallet_proofs p ON p.secret = json_extract(j.value, '$.secret')
        WHERE s.state = 'done' AND s.foreign_inputs IS NOT NULL GROUP BY s.id ORDER BY s.created_at`),
      foreignTwice: db.prepare(`SELECT json_extract(j.value, '$.secret') AS secret, COUNT(DISTINCT s.id) AS swaps, GROUP_CONCAT(s.id) AS ids
        FROM wallet_swaps s, json_each(s.foreign_inputs) j WHERE s.state = 'done' AND s.foreign_inputs IS NOT NULL
        GROUP BY secret HAVING COUNT(DISTINCT s.id) > 1`),
    };
  }

  /** A new swap, 'prepared', due at once. Its outputs are stored before any mint call. */
  insert(s: NewSwap): void {
    const now = this.clock();
    this.s.insert.run(s.id, s.mint, s.unit, s.purpose, s.ref, s.foreign.length ? JSON.stringify(s.foreign) : null, s.inputsAmount, s.fee,
      serializeSwapOutputs({ keysetId: s.keysetId, outputs: s.outputs, earlier: [] }), now, now, now);
  }

  get(id: string): SwapRecord | undefined {
    const r = this.s.get.get(id) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  setState(id: string, state: SwapState, error: string | null = null): void {
    this.s.setState.run(state, error, this.clock(), id);
  }

  setFee(id: string, fee: number): void {
    this.s.setFee.run(fee, this.clock(), id);
  }

  /** New outputs (after a keyset rotation refused the old ones); the old ones are kept for restore. */
  replaceOutputs(swap: SwapRecord, keysetId: string, outputs: SerializedOutputData[], fee: number): void {
    const earlier = swap.outputs.length ? [...swap.earlier, swap.outputs] : swap.earlier;
    this.s.setOutputs.run(serializeSwapOutputs({ keysetId, outputs, earlier }), fee, this.clock(), swap.id);
  }

  /** A mint call goes out now. An attempt still marked in flight (cut off by a crash) makes the swap uncertain. */
  sending(id: string): void {
    this.s.sending.run(this.clock(), id);
  }

  /** The call came back (answered, refused or failed); try again at `nextAt` if still prepared. */
  answered(id: string, a: { uncertain: boolean; nextAt: number; error?: string | null }): void {
    this.s.answered.run(a.uncertain ? 1 : 0, a.nextAt, a.error ?? null, this.clock(), id);
  }

  /** Done swaps that took our own proofs in as someone else's: those sats were counted twice. */
  ownInputsSwappedIn(): OwnInputsSwap[] {
    return this.s.ownInputs.all() as OwnInputsSwap[];
  }

  /** Foreign proofs that went into more than one done swap (a mint would refuse the second: counted twice). */
  foreignSwappedTwice(): { swaps: number; ids: string }[] {
    return (this.s.foreignTwice.all() as { secret: string; swaps: number; ids: string }[]).map((r) => ({ swaps: r.swaps, ids: r.ids }));
  }

  /** Ids of prepared swaps whose retry time has come (every prepared one when `all`). */
  due(now: number, all = false): string[] {
    return ((all ? this.s.open.all() : this.s.due.all(now)) as { id: string }[]).map((r) => r.id);
  }
}
