// What a request's outcome tells the rest of the daemon, apart from the client: the router
// (breakers, provider statistics), the metrics and the `payments` events - for a served attempt,
// for a request finished, and for a payment outcome the wallet learns later (late.ts).
import type { Logger } from '../../protocol/logger.ts';
import type { Usage } from '../../protocol/cost.ts';
import type { PaymentOutcome } from '../../wallet/payments/index.ts';
import { toApiError } from '../api/errors.ts';
import type { DaemonMetrics, RequestOutcome } from '../api/metrics.ts';
import type { PlannedAttempt, Router } from '../route/index.ts';
import type { AttemptOutcome } from './attempt.ts';
import type { DB } from '../../db/sqlite.ts';
import type { Budgets } from './budgets.ts';
import type { EventHub } from './events.ts';
import { applyLateOutcome } from './late.ts';
import type { AttemptRow, RequestLedger, RequestRow } from './ledger.ts';
import { paymentEvent } from './reply.ts';
import { chargeBeyondRounding } from './settle.ts';

/** What the reporter reads and tells: the request books (late outcomes), the router, metrics and events. */
export interface OutcomeDeps {
  db: DB;
  ledger: RequestLedger;
  budgets: Budgets;
  router: Pick<Router, 'report' | 'late'>;
  metrics?: DaemonMetrics;
  events?: Pick<EventHub, 'publish'>;
}

export class OutcomeReporter {
  constructor(
    private readonly d: OutcomeDeps,
    private readonly clock: () => number,
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {}

  /** A served attempt to the router (breaker, statistics) and the metrics. */
  served(planned: PlannedAttempt, r: Extract<AttemptOutcome, { kind: 'ok' }>, attempt: AttemptRow): void {
    // Change worth more than was sent is reported like invalid change, never as a cheap charge:
    // a node that pays us to pick it is not a cheap node (issue 13, the generous provider).
    const surplus = attempt.flags.includes('change_surplus');
    const changeInvalid = attempt.flags.includes('change_invalid') || surplus;
    this.d.router.report(planned, {
      breaker: changeInvalid ? { kind: 'failure', scope: 'provider', error: surplus ? 'change surplus' : 'invalid change' } : { kind: 'success' },
      latencyMs: r.providerMs,
      ...(attempt.expectedMsat !== null && !surplus ? { expectedMsat: attempt.expectedMsat, chargedMsat: chargeBeyondRounding(attempt.chargedMsat, attempt.expectedMsat) } : {}),
      changeInvalid,
      ...(attempt.promptTokens !== null ? { usage: { promptTokens: attempt.promptTokens, completionTokens: attempt.completionTokens ?? 0 } } : {}),
    });
    this.d.metrics?.attemptFinished(planned.providerId, changeInvalid ? 'failed' : 'ok');
  }

  /** A payment outcome known only later (change refused, reclaim, refund, loss) booked and reported. */
  late(o: PaymentOutcome): void {
    let change;
    try {
      change = applyLateOutcome(this.d, o);
    } catch (err) {
      this.logger.error('a late payment outcome could not be booked', { payment: o.paymentId, error: (err as Error).message });
      return;
    }
    if (!change) return;
    const { after, before, request, newFlags } = change;
    const changeInvalid = newFlags.includes('change_invalid') || newFlags.includes('change_surplus');
    const lost = newFlags.includes('lost');
    if (changeInvalid || lost) {
      this.d.router.late({ providerId: after.providerId, modelId: after.modelId, changeInvalid, ...(lost ? { lostMsat: after.chargedMsat } : {}) });
    }
    for (const f of newFlags) this.d.metrics?.flagRaised(after.providerId, f);
    if (request.status !== 'pending') this.publish(request, null, true);
    this.logger.debug('late payment outcome booked', { payment: o.paymentId, changeSat: [before.changeSat, after.changeSat], flags: newFlags });
  }

  /** A request finished: its metrics. */
  finished(t0: number, outcome: 'ok' | 'error', err: unknown, row: RequestRow | null, firstChunkMs: number | null | undefined, overheadMs?: number): void {
    const m = this.d.metrics;
    if (!m) return;
    m.requestFinished({
      outcome: outcome === 'ok' ? 'ok' : (toApiError(err).code as RequestOutcome), provider: row?.provider ?? null, payment: row?.payment ?? 'xcashu',
      chargedMsat: row?.chargedMsat ?? 0, expectedMsat: row?.expectedMsat ?? undefined, flags: row?.flags, durationMs: this.now() - t0,
      ...(overheadMs !== undefined ? { overheadMs } : {}), ...(firstChunkMs != null ? { firstChunkMs } : {}),
    });
  }

  /** The `payments` event of a request row. */
  publish(row: RequestRow, usage: Usage | null, late: boolean): void {
    this.d.events?.publish(paymentEvent(row, usage, late, this.clock()));
  }
}
