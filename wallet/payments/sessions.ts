// Session money: a deposit at a provider's balance (API-key) mode (ROUTSTR.md section 3, "The
// balance mode") is not a spend - the provider holds it for us - until requests are charged
// against it, it comes back as a refund token, or it is lost with the provider. The one owner of
// `wallet_sessions` (created by wallet/schema.ts). Every function is synchronous: call it inside the
// transaction that moves the proofs or queues the token it accounts for.
//
//   deposit (payments.sessionDeposit -> the node redeems the token -> sessionDeposited):
//     proofs spent; ledger session_deposit -(value - input fee), mint_fee -input fee; held +
//   charge (sessionCharge, per request, msat as reported): ledger session_charge - the whole sats
//     the running total crosses (ceil), so held is never overstated; held -
//   refund (sessionRefund: the node's refund token into the change queue, kind session_refund):
//     once swapped in, ledger session_refund +claimed; held -; then the session closes: what the
//     node kept beyond the charges booked is booked as charged (flag unreported_charge), what it
//     gave back beyond them is a correction (flag charges_overstated); held = 0
//   loss (sessionLost, or a refund token refused by the mint): ledger session_loss -held, evidence
//
//   held = deposited - charged - refunded - lost, per session; audit verify checks, per mint and
//   unit, funded + received - withdrawn - charged - fees - losses = unspent + pending + held.
import type { DB } from '../../db/sqlite.ts';
import { msatToSatCeil, sat, type Sat, type SatIn } from '../../protocol/units.ts';
import type { WalletContext } from '../context.ts';
import { PaymentError, PaymentStateError } from '../errors.ts';
import type { Clock } from '../store.ts';
import type { ChangeRow } from './change-queue.ts';
import type { TakenToken } from './take.ts';

export type SessionState = 'open' | 'refunding' | 'closed' | 'lost';

export interface SessionDepositRequest {
  /** The session (one balance at one provider, per mint): created by its first deposit. */
  sessionId: string;
  /** Default `<sessionId>.deposit_<random>`. */
  paymentId?: string;
  providerUrl: string;
  providerVersion?: string | null;
  /** Our wallet's mint, and its spelling as the provider lists it (see TakeTokenRequest). */
  mint: string;
  tokenMint?: string;
  /** What the session should be credited (the token also carries the input fee the node pays). */
  amountSat: SatIn;
  /** Runs inside the transaction that takes the proofs (the session manager's own row). */
  inTransaction?: (taken: TakenToken) => void;
}


/** Where one session's money is. Amounts in whole sats except chargedMsat. */
export interface SessionSummary {
  sessionId: string;
  providerUrl: string;
  mint: string;
  unit: 'sat';
  state: SessionState;
  /** Credited at the provider: the deposit tokens' value less their input fee. */
  depositedSat: Sat;
  /** Charges as reported per request. */
  chargedMsat: number;
  /** Booked as charged: ceil(chargedMsat / 1000), plus the close's correction. */
  chargedSat: Sat;
  refundedSat: Sat;
  lostSat: Sat;
  /** At the provider now (its promise, not our ecash): deposited - charged - refunded - lost. */
  heldSat: number;
  flags: string[];
  evidence: unknown;
  createdAt: number;
}

/** Money held at one provider (open sessions), for `wallet balance` and status. */
export interface SessionExposure {
  providerUrl: string;
  mint: string;
  unit: 'sat';
  heldSat: number;
  sessions: number;
}

interface Row {
  session_id: string; provider_url: string; mint: string; unit: string; state: SessionState; deposited: number; charged_msat: number;
  charged: number; refunded: number; lost: number; flags: string; evidence: string | null; created_at: number;
}

function summary(r: Row): SessionSummary {
  return {
    sessionId: r.session_id, providerUrl: r.provider_url, mint: r.mint, unit: 'sat', state: r.state, depositedSat: sat(r.deposited), chargedMsat: r.charged_msat,
    chargedSat: sat(r.charged), refundedSat: sat(r.refunded), lostSat: sat(r.lost), heldSat: r.deposited - r.charged - r.refunded - r.lost,
    flags: JSON.parse(r.flags) as string[], evidence: r.evidence ? JSON.parse(r.evidence) : null, createdAt: r.created_at,
  };
}

/** Held in sessions per mint and unit (every session: a closed one holds 0), for the invariant. */
export function heldInSessions(db: DB): { mint: string; unit: string; heldSat: number }[] {
  return db.prepare(`SELECT mint, unit, SUM(deposited - charged - refunded - lost) AS heldSat FROM wallet_sessions GROUP BY mint, unit`).all() as { mint: string; unit: string; heldSat: number }[];
}

export class SessionBook {
  private readonly s;
  private readonly clock: Clock;

  constructor(private readonly ctx: WalletContext) {
    this.clock = ctx.clock;
    const db = ctx.db;
    this.s = {
      insert: db.prepare(`INSERT INTO wallet_sessions (session_id, provider_url, mint, unit, state, created_at, updated_at) VALUES (?, ?, ?, 'sat', 'open', ?, ?)`),
      get: db.prepare('SELECT * FROM wallet_sessions WHERE session_id = ?'),
      open: db.prepare(`SELECT * FROM wallet_sessions WHERE state IN ('open', 'refunding') ORDER BY created_at`),
      add: db.prepare(`UPDATE wallet_sessions SET deposited = deposited + ?, charged_msat = charged_msat + ?, charged = charged + ?, refunded = refunded + ?,
        lost = lost + ?, updated_at = ? WHERE session_id = ?`),
      state: db.prepare('UPDATE wallet_sessions SET state = ?, evidence = COALESCE(?, evidence), updated_at = ? WHERE session_id = ?'),
      flags: db.prepare('UPDATE wallet_sessions SET flags = ?, updated_at = ? WHERE session_id = ?'),
    };
  }

  get(sessionId: string): SessionSummary | undefined {
    const r = this.s.get.get(sessionId) as Row | undefined;
    return r ? summary(r) : undefined;
  }

  /** The session, which must be in one of `states`. */
  require(sessionId: string, ...states: SessionState[]): SessionSummary {
    const s = this.get(sessionId);
    if (!s) throw new PaymentStateError(`no session ${sessionId}`);
    if (states.length && !states.includes(s.state)) throw new PaymentStateError(`session ${sessionId} is ${s.state}, not ${states.join(' or ')}`);
    return s;
  }

  /** A session for a new deposit: the open one it must match, or (`create`) a new one at this provider and mint. */
  openFor(sessionId: string, providerUrl: string, mint: string, create: boolean): void {
    const s = this.get(sessionId);
    if (!s) {
      const now = this.clock();
      if (create) this.s.insert.run(sessionId, providerUrl, mint, now, now);
      return;
    }
    if (s.providerUrl !== providerUrl || s.mint !== mint) throw new PaymentError(`session ${sessionId} is at ${s.providerUrl} (${s.mint}), not ${providerUrl} (${mint})`);
    if (s.state !== 'open') throw new PaymentStateError(`session ${sessionId} is ${s.state}: no more deposits`);
  }

  /** Sessions holding money now (open or being refunded). */
  openSessions(): SessionSummary[] {
    return (this.s.open.all() as Row[]).map(summary);
  }

  /** Money held per provider (open sessions). */
  exposure(): SessionExposure[] {
    const by = new Map<string, SessionExposure>();
    for (const s of this.openSessions()) {
      const k = `${s.providerUrl}\n${s.mint}`;
      const e = by.get(k) ?? { providerUrl: s.providerUrl, mint: s.mint, unit: 'sat' as const, heldSat: 0, sessions: 0 };
      e.heldSat += s.heldSat;
      e.sessions++;
      by.set(k, e);
    }
    return [...by.values()].filter((e) => e.heldSat !== 0);
  }

  /**
   * The provider credited a deposit token (its proofs are marked spent by the caller): `valueSat`
   * the token's face value, `inputFeeSat` what the mint kept when the provider redeemed it.
   */
  deposited(sessionId: string, depositRef: string, valueSat: number, inputFeeSat: number, evidence: unknown): void {
    const s = this.require(sessionId, 'open', 'refunding', 'lost');
    const credited = valueSat - inputFeeSat;
    const { ledger } = this.ctx;
    ledger.record({ kind: 'session_deposit', mint: s.mint, unit: s.unit, amount: -credited, ref: sessionId, evidence: { deposit: depositRef, provider: s.providerUrl, ...obj(evidence) } });
    ledger.record({ kind: 'mint_fee', mint: s.mint, unit: s.unit, amount: -inputFeeSat, ref: depositRef, evidence: { purpose: 'session_deposit', session: sessionId } });
    this.add(sessionId, { deposited: credited });
    // A deposit landing on a session already written off (its answer was lost): held again, so lost again.
    if (s.state === 'lost') this.lose(sessionId, { reason: 'deposit credited after the session was lost', deposit: depositRef });
  }

  /** A request charged against the session (`costMsat` as reported); books the whole sats the total crosses. */
  charge(sessionId: string, costMsat: number, requestId: string): void {
    if (!Number.isSafeInteger(costMsat) || costMsat < 0) throw new PaymentError(`a session charge must be a whole number of msat >= 0, got ${costMsat}`);
    const s = this.require(sessionId, 'open', 'refunding');
    const bookedSat = msatToSatCeil(s.chargedMsat + costMsat) - msatToSatCeil(s.chargedMsat);
    this.ctx.ledger.record({ kind: 'session_charge', mint: s.mint, unit: s.unit, amount: -bookedSat, ref: requestId, evidence: { session: sessionId, msat: costMsat } });
    this.add(sessionId, { chargedMsat: costMsat, charged: bookedSat });
  }

  /**
   * The provider refunded the balance: `enqueue` puts the token in the change queue (the session
   * closes once it is swapped in); null - nothing to refund (no balance) - closes it now.
   */
  refund(sessionId: string, token: string | null, evidence: unknown, enqueue: (s: SessionSummary, token: string) => void): void {
    const s = this.require(sessionId, 'open', 'refunding', 'lost');
    if (token === null) return this.close(sessionId, evidence ?? { refund: 'nothing to refund' });
    if (s.state !== 'lost') this.s.state.run('refunding', null, this.clock(), sessionId);
    enqueue(s, token);
  }

  /**
   * The refund token was swapped in (its ledger row written by the change queue): `claimedSat` less
   * held; once nothing else is on its way, the session closes.
   */
  refundReceived(sessionId: string, claimedSat: number, stillQueued: boolean): void {
    this.add(sessionId, { refunded: claimedSat });
    if (!stillQueued) this.close(sessionId, { refund: claimedSat });
  }

  /**
   * Nothing more will come back: what the node kept beyond the charges booked is charged too (flag
   * unreported_charge); what it returned beyond them corrects the charges (flag charges_overstated)
   * or a loss booked earlier. Then held is 0.
   */
  close(sessionId: string, evidence: unknown): void {
    const s = this.require(sessionId);
    const { ledger } = this.ctx;
    let rest = s.heldSat;
    if (rest < 0 && s.lostSat > 0) {
      // Written off, then refunded after all: the loss shrinks first.
      const back = Math.min(s.lostSat, -rest);
      ledger.record({ kind: 'session_loss', mint: s.mint, unit: s.unit, amount: back, ref: sessionId, evidence: { correction: 'refunded after it was written off', ...obj(evidence) } });
      this.add(sessionId, { lost: -back });
      rest += back;
    }
    if (rest !== 0) {
      ledger.record({ kind: 'session_charge', mint: s.mint, unit: s.unit, amount: -rest, ref: sessionId, evidence: { correction: rest > 0 ? 'kept beyond the charges reported' : 'charges reported beyond what it kept', ...obj(evidence) } });
      this.add(sessionId, { charged: rest });
      this.flag(sessionId, rest > 0 ? 'unreported_charge' : 'charges_overstated');
    }
    this.s.state.run('closed', JSON.stringify(evidence ?? null), this.clock(), sessionId);
  }

  /** The provider will not give the balance back (it vanished, or its refund token was refused): a loss with evidence. */
  lose(sessionId: string, evidence: unknown, openOnly = false): void {
    const s = openOnly ? this.require(sessionId, 'open', 'refunding') : this.require(sessionId);
    if (s.heldSat > 0) {
      this.ctx.ledger.record({ kind: 'session_loss', mint: s.mint, unit: s.unit, amount: -s.heldSat, ref: sessionId, evidence: { provider: s.providerUrl, ...obj(evidence) } });
      this.add(sessionId, { lost: s.heldSat });
    }
    this.s.state.run('lost', JSON.stringify(evidence ?? null), this.clock(), sessionId);
    this.ctx.logger.warn('session balance lost', { session: sessionId, provider: s.providerUrl, amountSat: s.heldSat });
  }

  private flag(sessionId: string, flag: string): void {
    const s = this.require(sessionId);
    if (!s.flags.includes(flag)) this.s.flags.run(JSON.stringify([...s.flags, flag]), this.clock(), sessionId);
  }

  private add(sessionId: string, d: { deposited?: number; chargedMsat?: number; charged?: number; refunded?: number; lost?: number }): void {
    this.s.add.run(d.deposited ?? 0, d.chargedMsat ?? 0, d.charged ?? 0, d.refunded ?? 0, d.lost ?? 0, this.clock(), sessionId);
  }
}

/**
 * The change queue's hooks for session refunds (inside the transaction that receives or refuses
 * the token): received -> the session closes once nothing else is on its way; refused or lost -> a
 * loss with the mint's answer as evidence.
 */
export function refundHooks(book: () => SessionBook, rowsOf: (id: string) => ChangeRow[]): { received(rows: ChangeRow[]): void; refused(rows: ChangeRow[]): void } {
  return {
    received: (rows) => {
      for (const r of rows) {
        if (r.kind !== 'session_refund') continue;
        const more = rowsOf(r.paymentId).some((c) => c.id !== r.id && (c.state === 'queued' || c.state === 'swapping'));
        book().refundReceived(r.paymentId, r.claimed, more);
      }
    },
    refused: (rows) => {
      for (const r of rows) {
        if (r.kind === 'session_refund' && (r.state === 'invalid' || r.state === 'lost')) book().lose(r.paymentId, { refund_token: r.state, reason: r.error, detail: r.evidence });
      }
    },
  };
}

const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : v === undefined ? {} : { detail: v });
