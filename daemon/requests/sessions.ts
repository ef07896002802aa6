// Session mode (issue 12; DESIGN.md "Two ways to pay"): small, capped balances at providers, so
// a streamed answer reaches the client as the model makes it (a node streams live only in its
// balance mode; with X-Cashu it buffers the whole answer). One session per (provider, mint).
//
//   lease    before a request is sent, its worst case (the msat the node will reserve, from
//            the route plan) is reserved HERE against our view of the balance, synchronously:
//            concurrent requests on one session never overdraw it (no 402 from the node).
//            Short -> a deposit (the first one creates the balance, later ones top it up),
//            never above the per-provider cap (default: a few worst cases seen there) nor the
//            global cap; no room -> wait for a running request to end, then fall back to X-Cashu.
//   settle   charged = the balance's decrease: exact when the request ran alone on the session
//            (the balance before it less the node's `remaining_balance_msats`), else the cost the
//            node reported, checked against /v1/balance/info once the session is quiet. A
//            balance that shrank more than the reported costs is booked as charged (the wallet
//            knows where its money is), flagged `unreported_charge`, and the provider demoted.
//   refund   POST /v1/balance/refund when idle (sweep), on SIGTERM (closeAll), when the
//            provider's breaker opens (providerDown), on start for every session a crash left
//            (recover): 400 ongoing / 409 / no answer -> retry by the table below; 400 no
//            balance -> closed; 410 swept / 401 unknown key / never answering -> a loss with
//            evidence, bounded by the cap. On start, before that refund, requests the crash cut on
//            the session are charged what its balance lost for them (session-interrupted.ts).
// The money is booked by the wallet (wallet/payments/sessions.ts); the key lives in
// session-store.ts. Nothing here logs the API key.
import { randomId } from '../../protocol/ids.ts';
import { nullLogger, type Logger } from '../../protocol/logger.ts';
import { apiKeyOf, SessionApi, versionAtLeast } from './session-api.ts';
import { refundSession } from './session-refund.ts';
import { chargeCut } from './session-interrupted.ts';
import { SessionStore, type SessionRow } from './session-store.ts';
import { SESSION_DEFAULTS, type BreakerEvents, type Lease, type ProviderExposure, type SessionDeps, type SessionOptions, type SessionTarget } from './session-contract.ts';

export type { SessionPayments } from './session-refund.ts';

interface Live {
  row: SessionRow;
  /** What we believe the node holds for us, msat (its reservations for our running requests included). */
  balanceMsat: number;
  leases: Set<Lease>;
  /** Charges taken on the node's word since the balance was last checked. */
  unchecked: boolean;
  closing?: Promise<void>;
  unreported: number;
}

const newSessionId = () => randomId('ses_', 12);

export class SessionManager {
  readonly options: SessionOptions;
  private readonly store: SessionStore;
  private readonly api: SessionApi;
  private readonly clock: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly logger: Logger;
  private readonly live = new Map<string, Live>();
  private readonly worstSat = new Map<string, number>();
  /** A deposit on its way, per (provider, mint): one at a time, so concurrent requests never open two sessions. */
  private readonly depositing = new Map<string, Promise<void>>();
  private waiters: (() => void)[] = [];
  private peakHeldSat = 0;

  constructor(private readonly d: SessionDeps) {
    this.options = { ...SESSION_DEFAULTS, ...d.options };
    this.clock = d.clock ?? Date.now;
    this.store = new SessionStore(d.db, this.clock);
    this.api = d.api ?? new SessionApi();
    this.sleep = d.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms).unref()));
    this.logger = d.logger ?? nullLogger;
  }

  /** Whether a request to this provider may pay from a session (its version, the config, the request's choice). */
  usable(stream: boolean, choice: 'session' | 'xcashu' | undefined, providerVersion: string | null): boolean {
    const mode = choice ?? (stream ? this.options.streaming : 'xcashu');
    return mode === 'session' && providerVersion !== null && versionAtLeast(providerVersion, this.options.minVersion);
  }

  /**
   * Reserve a request's worst case on the session at this provider and mint, depositing first
   * when it does not fit. Resolves null when the caps leave no room within `waitMs` (pay by X-Cashu).
   */
  async lease(t: SessionTarget, signal?: AbortSignal): Promise<Lease | null> {
    const key = keyOf(t.providerUrl, t.mint);
    const worstSat = Math.ceil(t.worstMsat / 1000);
    this.worstSat.set(t.providerId, Math.max(this.worstSat.get(t.providerId) ?? 0, worstSat));
    const deadline = this.clock() + this.options.waitMs;
    for (;;) {
      if (signal?.aborted) return null;
      const live = this.live.get(key);
      if (live && !live.closing && live.balanceMsat - reservedOf(live) >= t.worstMsat) return this.take(live, t.worstMsat);
      const pending = this.depositing.get(key);
      if (pending) {
        await pending.catch(() => undefined);
        continue;
      }
      if (live?.closing) {
        await live.closing.catch(() => undefined);
        continue;
      }
      const shortMsat = t.worstMsat - (live ? live.balanceMsat - reservedOf(live) : 0);
      const roomSat = this.roomSat(t.providerId);
      const depositSat = Math.min(roomSat, Math.max(Math.ceil(shortMsat / 1000), 2 * worstSat));
      // Near the cap with requests running here: their charges make room for a proper top-up
      // (a deposit costs a token and its input fee; a trickle of 1-sat ones is waste).
      const trickle = depositSat < 2 * worstSat && live !== undefined && live.leases.size > 0;
      if (depositSat * 1000 < shortMsat || trickle) {
        // Over the cap: wait for a running request to give its reservation back.
        if (!this.anyLeases() || this.clock() >= deadline) return null;
        await this.released(Math.max(0, deadline - this.clock()));
        continue;
      }
      const p = this.deposit(live, t, depositSat);
      this.depositing.set(key, p);
      try {
        await p;
      } catch (err) {
        this.logger.warn('session deposit failed; paying by X-Cashu', { provider: t.providerId, error: (err as Error).message });
        return null;
      } finally {
        this.depositing.delete(key);
      }
    }
  }

  /**
   * The request is over: `reportedMsat` the node's cost, `remainingMsat` its balance after the
   * charge when it said (the usage chunk's remaining_balance_msats). Returns what the balance lost.
   */
  charge(lease: Lease, reportedMsat: number | null, remainingMsat: number | null): number {
    const live = this.liveById(lease.sessionId);
    if (!live) return reportedMsat ?? 0;
    let chargedMsat: number;
    if (lease.solo && remainingMsat !== null && remainingMsat <= live.balanceMsat) {
      chargedMsat = live.balanceMsat - remainingMsat;
      live.balanceMsat = remainingMsat;
      if (chargedMsat > (reportedMsat ?? 0)) this.flagged(live, { request_charged_msat: chargedMsat, reported_msat: reportedMsat });
    } else {
      chargedMsat = reportedMsat ?? 0;
      live.balanceMsat -= chargedMsat;
      live.unchecked = true;
    }
    return chargedMsat;
  }

  /** Book a lease's charge in the wallet (inside the caller's transaction). */
  book(lease: Lease, chargedMsat: number, ref: string): void {
    this.d.payments.sessionCharge(lease.sessionId, chargedMsat, ref);
  }

  /** Give the lease's reservation back; a session gone quiet after charges taken on the node's word is checked. */
  release(lease: Lease, suspect = false): void {
    const live = this.liveById(lease.sessionId);
    if (!live || !live.leases.delete(lease)) return;
    if (suspect) live.unchecked = true;
    this.store.touch(live.row.sessionId);
    const w = this.waiters;
    this.waiters = [];
    for (const wake of w) wake();
    if (live.leases.size === 0 && live.unchecked && !live.closing) void this.check(live).catch((err) => this.logger.warn('session balance check failed', { session: live.row.sessionId, error: (err as Error).message }));
  }

  /** Compare the node's balance with ours; a shrink beyond the reported costs is booked, flagged and reported. */
  async check(live: Live): Promise<void> {
    const { balanceMsat } = await this.api.info(live.row.providerUrl, live.row.apiKey);
    if (live.leases.size > 0) return; // a request started meanwhile: the next quiet moment checks
    live.unchecked = false;
    const shrinkMsat = live.balanceMsat - balanceMsat;
    live.balanceMsat = balanceMsat;
    if (shrinkMsat <= 0) return;
    const s = live.row;
    this.d.payments.sessionCharge(s.sessionId, shrinkMsat, `${s.sessionId}.unreported.${++live.unreported}`);
    this.flagged(live, { shrink_msat: shrinkMsat });
  }

  /** The balance shrank by more than the node reported: flag the session, demote the provider. */
  private flagged(live: Live, detail: Record<string, unknown>): void {
    const s = live.row;
    this.store.flag(s.sessionId, 'unreported_charge');
    this.logger.warn('a session balance shrank more than the costs reported', { session: s.sessionId, provider: s.providerId, ...detail });
    this.d.onFlag?.(s.providerId, 'unreported_charge', { session: s.sessionId, ...detail });
  }

  /** A session's flags (e.g. unreported_charge). */
  flags(sessionId: string): string[] {
    return this.store.get(sessionId)?.flags ?? [];
  }

  /** Sessions not closed yet (ids). */
  unclosed(): string[] {
    return this.store.unclosed().map((r) => r.sessionId);
  }

  /** Refund sessions unused for `idleRefundMs` (call periodically). */
  async sweep(): Promise<number> {
    const now = this.clock();
    const idle = [...this.live.values()].filter((l) => l.leases.size === 0 && !l.closing && !this.depositing.has(keyOf(l.row.providerUrl, l.row.mint)) && now - (this.store.get(l.row.sessionId)?.lastUsedAt ?? 0) >= this.options.idleRefundMs);
    await Promise.all(idle.map((l) => this.close(l.row.sessionId, 'idle')));
    return idle.length;
  }

  /** The provider's breaker opened: take its balances home. */
  async providerDown(providerId: string): Promise<void> {
    await Promise.all([...this.live.values()].filter((l) => l.row.providerId === providerId).map((l) => this.close(l.row.sessionId, 'breaker_open')));
  }

  /** Refund a provider's sessions whenever its (whole-provider) breaker opens; returns the unsubscribe. */
  followBreakers(breakers: BreakerEvents): () => void {
    const on = (c: { providerId: string; modelId: string | null; to: string }) => {
      if (c.to === 'open' && c.modelId === null) void this.providerDown(c.providerId).catch((err) => this.logger.warn('session refund after a breaker opened failed', { error: (err as Error).message }));
    };
    breakers.on('change', on);
    return () => breakers.off('change', on);
  }

  /** SIGTERM (after the requests drained): refund every session. */
  async closeAll(reason = 'shutdown'): Promise<void> {
    await Promise.all(this.store.unclosed().map((r) => this.close(r.sessionId, reason)));
  }

  /** On start, after the wallet's recovery: refund every session the last run left behind. */
  async recover(): Promise<number> {
    const rows = this.store.unclosed();
    await Promise.all(rows.map(async (r) => {
      if (this.d.books) await chargeCut({ db: this.d.db, books: this.d.books, payments: this.d.payments, api: this.api }, r).catch((err) => this.logger.warn('the cost of requests cut by the last stop is unknown; the refund books it', { session: r.sessionId, error: (err as Error).message }));
      await this.close(r.sessionId, 'left by the last run');
    }));
    return rows.length;
  }

  /** Refund one session (new requests wait for another); resolves when it is closed or given up for now. */
  close(sessionId: string, reason: string): Promise<void> {
    const row = this.store.get(sessionId);
    if (!row || row.state === 'closed') return Promise.resolve();
    const live = this.live.get(keyOf(row.providerUrl, row.mint));
    const mine = live && live.row.sessionId === sessionId ? live : undefined;
    if (mine?.closing) return mine.closing;
    const p = this.refund(row, mine, reason).finally(() => {
      if (mine && this.live.get(keyOf(row.providerUrl, row.mint)) === mine) this.live.delete(keyOf(row.providerUrl, row.mint));
    });
    if (mine) mine.closing = p;
    return p;
  }

  /** Money held per provider now, with its cap. */
  exposure(): ProviderExposure[] {
    const by = new Map<string, ProviderExposure>();
    for (const l of this.live.values()) {
      const e = by.get(l.row.providerId) ?? { providerId: l.row.providerId, providerUrl: l.row.providerUrl, heldSat: 0, capSat: this.capSat(l.row.providerId), sessions: 0 };
      e.heldSat += this.d.payments.session(l.row.sessionId)?.heldSat ?? 0;
      e.sessions += 1;
      by.set(l.row.providerId, e);
    }
    return [...by.values()];
  }

  /** The most held at providers at any moment since start (sats). */
  get peakExposureSat(): number {
    return this.peakHeldSat;
  }

  // ---- internals -------------------------------------------------------------------------------

  private take(live: Live, reserveMsat: number): Lease {
    const solo = live.leases.size === 0;
    for (const other of live.leases) other.solo = false;
    const lease: Lease = { sessionId: live.row.sessionId, apiKey: live.row.apiKey, reserveMsat, solo };
    live.leases.add(lease);
    return lease;
  }

  private async deposit(live: Live | undefined, t: SessionTarget, amountSat: number): Promise<void> {
    const sessionId = live?.row.sessionId ?? newSessionId();
    const { payments } = this.d;
    let apiKey = live?.row.apiKey ?? '';
    const taken = await payments.sessionDeposit({
      sessionId, providerUrl: t.providerUrl, providerVersion: t.providerVersion, mint: t.mint, tokenMint: t.tokenMint, amountSat,
      inTransaction: (tk) => {
        if (live) return;
        apiKey = apiKeyOf(tk.token);
        this.store.insert({ sessionId, providerId: t.providerId, providerUrl: t.providerUrl, mint: t.mint, tokenMint: t.tokenMint, apiKey });
      },
    });
    let creditedMsat: number;
    try {
      if (live) creditedMsat = (await this.api.topup(t.providerUrl, apiKey, taken.token)).creditedMsat;
      else creditedMsat = (await this.api.create(t.providerUrl, taken.token)).balanceMsat;
      payments.sessionDeposited(taken.paymentId, { balanceMsat: creditedMsat });
    } catch (err) {
      // Whether the node took it is unknown: the wallet asks the mint and books it (credited, or the proofs back).
      const r = await payments.reclaim(taken.paymentId);
      if (r.action !== 'deposited') {
        if (!live) this.store.setState(sessionId, 'closed');
        throw err;
      }
      creditedMsat = (taken.sentSat - taken.feeSat) * 1000;
    }
    if (live) live.balanceMsat += creditedMsat;
    else this.live.set(keyOf(t.providerUrl, t.mint), { row: this.store.get(sessionId)!, balanceMsat: creditedMsat, leases: new Set(), unchecked: false, unreported: 0 });
    this.peakHeldSat = Math.max(this.peakHeldSat, this.heldTotalSat());
  }

  private async refund(row: SessionRow, live: Live | undefined, reason: string): Promise<void> {
    // Running requests end first (the node refuses a refund while they run).
    while (live && live.leases.size > 0) await this.released(60_000);
    await refundSession({ payments: this.d.payments, store: this.store, api: this.api, sleep: this.sleep, logger: this.logger, onFlag: this.d.onFlag }, row, reason);
  }

  private liveById(sessionId: string): Live | undefined {
    for (const l of this.live.values()) if (l.row.sessionId === sessionId) return l;
    return undefined;
  }

  private anyLeases(): boolean {
    for (const l of this.live.values()) if (l.leases.size > 0) return true;
    return false;
  }

  private released(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private capSat(providerId: string): number {
    const o = this.options;
    return o.providerCapSat ?? o.capWorstCases * (this.worstSat.get(providerId) ?? 0);
  }

  private heldSat(providerId?: string): number {
    let sum = 0;
    for (const l of this.live.values()) if (!providerId || l.row.providerId === providerId) sum += Math.ceil(Math.max(0, l.balanceMsat) / 1000);
    return sum;
  }

  private heldTotalSat(): number {
    return this.heldSat();
  }

  /** Sats that may still be deposited at this provider under both caps. */
  private roomSat(providerId: string): number {
    return Math.max(0, Math.min(this.capSat(providerId) - this.heldSat(providerId), this.options.globalCapSat - this.heldTotalSat()));
  }
}

const keyOf = (providerUrl: string, mint: string) => `${providerUrl}\n${mint}`;
const reservedOf = (l: Live) => {
  let sum = 0;
  for (const x of l.leases) sum += x.reserveMsat;
  return sum;
};
