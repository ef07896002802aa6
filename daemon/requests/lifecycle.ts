// One request from admission to settlement (DESIGN.md "The life of one request"): the hub that
// HTTP and WebSocket both enter through (contract.ts RequestHandler). It alone - with deliver.ts,
// which it hands each answered attempt - calls the router, the wallet's payment path and the
// provider client.
//
//   admission   plan (the wallet's spendable sats per mint, the caller's max sats and remaining
//               budget, policy, pin), then ONE transaction: the budget reservation at the plan's
//               worst case (its largest token plus the mint's input fee), the request row, and -
//               in the same commit, since every commit is an fsync - the first token's proofs
//               going pending with its attempt row
//   attempts    at most 3, each its own payment `<requestId>.<n>` with fresh proofs (attempt.ts);
//               failover only before the first byte reaches the client
//   answer      (deliver.ts) ONE transaction: the wallet's settle (proofs spent, change queued),
//               the attempt reconciled, the request finished, the budget settled at the real cost;
//               then the breakers and statistics, the metrics, the `payments` event, the client's
//               answer (a stream: passed on event by event, settled when it ends)
//   late        the wallet's later outcomes (late.ts): change refused, reclaims, refunds, losses
//
// A sat is never "probably fine": the request row and its attempt rows are written before any
// byte goes out, and every path out of here - served, failed, canceled, crashed (recover.ts) -
// ends them with the wallet's facts.
import { performance } from 'node:perf_hooks';
import { randomId } from '../../protocol/ids.ts';
import { nullLogger, type Logger } from '../../protocol/logger.ts';
import { callProvider } from '../../protocol/provider-call.ts';
import { TurnQueue } from '../../wallet/turns.ts';
import { BudgetExceededError, CanceledError, PaymentFailedError, ProviderFailedError, type DaemonError } from '../api/errors.ts';
import type { PlannedAttempt, RoutePlan } from '../route/index.ts';
import { Admission } from './admission.ts';
import { runAttempt, type AttemptDeps, type AttemptOutcome } from './attempt.ts';
import type { ApiRequest, RequestHandler, ResponseSink } from './contract.ts';
import { serveAnswer, serveStream, type DeliveryDeps, type RequestState } from './deliver.ts';
import { ShuttingDownError } from './errors.ts';
import { REQUEST_TIMEOUT_DEFAULTS, type LifecycleDeps } from './lifecycle-deps.ts';
import { OutcomeReporter } from './outcomes.ts';
import { Reply } from './reply.ts';
import { xcashuBody } from './responses-stream.ts';
import { runSessionAttempt } from './session-attempt.ts';
import type { Lease } from './session-contract.ts';
import { finishUnserved } from './settle.ts';
import { TOPUP_CAP_DEFAULTS, TopUpCap } from './topup-cap.ts';

export { REQUEST_TIMEOUT_DEFAULTS, type LifecycleDeps, type LifecycleOptions } from './lifecycle-deps.ts';

export class RequestLifecycle implements RequestHandler {
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly now: () => number;
  private readonly call: NonNullable<LifecycleDeps['call']>;
  private readonly topUps: TopUpCap;
  private readonly maxAttempts: number;
  private readonly attemptDeps: AttemptDeps;
  private readonly admission: Admission;
  private readonly outcomes: OutcomeReporter;
  private readonly delivery: DeliveryDeps;
  private readonly inflight = new Map<AbortController, Promise<void>>();
  /**
   * Requests released together (a burst read in one poll, a thousand streams ending in one) pay and
   * settle one per turn of the event loop, a commit each, so the loop reads sockets between them.
   */
  private readonly turns = new TurnQueue();
  private readonly work = new Set<Promise<unknown>>();
  private draining = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly d: LifecycleDeps) {
    this.logger = d.logger ?? nullLogger;
    this.clock = d.clock ?? Date.now;
    this.now = d.now ?? (() => performance.now());
    this.call = d.call ?? callProvider;
    this.topUps = new TopUpCap({ ...TOPUP_CAP_DEFAULTS, ...d.options?.topUp }, this.clock);
    this.maxAttempts = Math.max(1, Math.min(d.options?.maxAttempts ?? 3, 3));
    this.admission = new Admission({ db: d.db, router: d.router, ledger: d.ledger, budgets: d.budgets, balances: () => d.balances(), feePpk: d.feePpk && ((m) => d.feePpk!(m)), clock: this.clock, logger: this.logger, maxAttempts: this.maxAttempts });
    this.attemptDeps = {
      db: d.db, ledger: d.ledger, budgets: d.budgets, payments: d.payments, call: this.call, callDeps: d.callDeps, timeouts: { ...REQUEST_TIMEOUT_DEFAULTS, ...d.options?.timeouts },
      topUps: this.topUps, feeSat: (mint) => this.admission.feeSat(mint), background: (what, w) => this.background(what, w),
      now: this.now, clock: this.clock, logger: this.logger,
    };
    this.outcomes = new OutcomeReporter(d, this.clock, this.now, this.logger);
    this.delivery = { d, outcomes: this.outcomes, turns: this.turns, now: this.now, clock: this.clock };
    this.unsubscribe = d.payments.onOutcome((o) => this.outcomes.late(o));
  }

  /** Requests running now. */
  get running(): number {
    return this.inflight.size;
  }

  async handle(req: ApiRequest, sink: ResponseSink): Promise<void> {
    const reply = new Reply(sink);
    if (this.draining) return reply.error(new ShuttingDownError());
    const ctl = new AbortController();
    const run = this.run(req, reply, ctl).catch(async (err) => {
      this.logger.error('request failed unexpectedly', { error: err as Error });
      await reply.error(err as Error);
    });
    this.inflight.set(ctl, run);
    try {
      await run;
    } finally {
      this.inflight.delete(ctl);
    }
  }

  /**
   * Stop taking requests; let the running ones finish for up to `graceMs`, then cancel the rest
   * (what they were charged is settled), and wait up to `graceMs` more for the money work
   * (reclaims) started on their behalf. What is left is resolved by recovery on the next start.
   */
  async drain(graceMs: number): Promise<{ canceled: number; unfinishedWork: number }> {
    this.draining = true;
    const all = () => Promise.allSettled([...this.inflight.values()]);
    let canceled = 0;
    if (!(await within(all(), graceMs))) {
      for (const ctl of this.inflight.keys()) {
        ctl.abort(new ShuttingDownError());
        canceled += 1;
      }
      await all();
    }
    await within(this.idle(), graceMs);
    return { canceled, unfinishedWork: this.work.size };
  }

  /** Resolves once the money work started off the request path (reclaims) is done. */
  async idle(): Promise<void> {
    while (this.work.size) await Promise.allSettled([...this.work]);
  }

  /** Stop listening to the wallet (after drain). */
  close(): void {
    this.unsubscribe();
  }

  // ---- one request -----------------------------------------------------------------------------

  private async run(req: ApiRequest, reply: Reply, ctl: AbortController): Promise<void> {
    const t0 = this.now();
    const requestId = newRequestId();
    const signal = eitherAborts(req.signal, ctl.signal);
    const body = req.body as Record<string, unknown>;
    const model = String(body.model);
    const maxSats = minDefined(req.maxSats, req.client.maxSatsPerRequest ?? undefined);

    let plan: RoutePlan;
    try {
      plan = this.admission.plan(req, model, maxSats);
    } catch (err) {
      const error = this.admission.refusal(err, req, model, maxSats);
      this.admission.recordRefused(requestId, req, model, err, error);
      this.outcomes.finished(t0, 'error', error, null, null);
      return reply.error(error, requestId);
    }

    // Reserved with the request row in the transaction that takes the first token (one commit, not two).
    const reservedMsat = this.admission.worstCaseMsat(plan);
    const ctx: RequestState = { req, requestId, model, signal, reply, t0, plan, maxSats, reservedMsat, opened: false, providerMs: 0, tried: [], payment: 'xcashu' };
    try {
      await this.attempts(ctx);
    } finally {
      this.d.router.release(plan);
    }
  }

  private async attempts(ctx: RequestState): Promise<void> {
    let lastError: DaemonError | Error | undefined; // made only when no attempt served (an Error's stack costs on every request)
    for (const [i, planned] of ctx.plan.attempts.entries()) {
      if (ctx.signal.aborted) {
        lastError = new CanceledError();
        break;
      }
      // The payment-mode seam: a session lease when this provider and request may use one, else a token.
      const lease = await this.sessionLease(ctx, planned);
      // Then pay one request per turn: those released together (a burst read in one poll) and those
      // whose lease waits ended together (one release or deposit wakes them all; their deadlines
      // expire in one timers phase) would otherwise each commit in the same turn (77-104 ms stalls
      // in the ws bench).
      await this.turns.pass();
      ctx.payment = lease ? 'session' : 'xcashu';
      const plain = { ...(ctx.req.body as Record<string, unknown>), model: planned.model };
      // A session streams live; a token's streamed /v1/responses is asked unstreamed (responses-stream.ts).
      const body = lease ? plain : xcashuBody(ctx.req.endpoint, plain);
      const input = {
        requestId: ctx.requestId, n: i + 1, planned, endpoint: ctx.req.endpoint, body, client: ctx.req.client, maxSats: ctx.maxSats, reservedMsat: ctx.reservedMsat, signal: ctx.signal,
        open: ctx.opened ? undefined : () => this.admission.open(ctx),
      };
      const r: AttemptOutcome = lease ? await runSessionAttempt(this.attemptDeps, this.d.sessions!, lease, input) : await runAttempt(this.attemptDeps, input);
      if (r.kind !== 'unpaid') ctx.opened = true;
      if (r.kind === 'unpaid' && r.error instanceof BudgetExceededError) {
        // The reservation did not fit (a concurrent request took the rest): nothing was taken.
        this.d.router.report(planned, { breaker: { kind: 'neutral' } });
        lastError = r.error;
        break;
      }
      if (r.kind === 'unpaid') {
        this.d.router.report(planned, { breaker: { kind: 'neutral' } });
        this.logger.warn('no token could be taken for an attempt', { request: ctx.requestId, provider: planned.providerId, error: (r.error as Error)?.message });
        lastError = r.error instanceof Error ? r.error : new PaymentFailedError('the payment failed');
        continue;
      }
      ctx.providerMs += r.providerMs;
      if (r.kind === 'failed') {
        this.d.router.report(planned, { breaker: r.breaker, latencyMs: r.providerMs, refunded: r.refunded });
        this.d.metrics?.attemptFinished(planned.providerId, 'failed');
        ctx.tried.push({ provider: planned.providerId, outcome: r.summary });
        lastError = r.error;
        if (!r.failover) break;
        continue;
      }
      if (!r.call.stream) return serveAnswer(this.delivery, ctx, planned, r, r.call);
      if ((await serveStream(this.delivery, ctx, planned, r, r.call)) === 'served') return;
    }
    // Nothing served: the request fails with the last attempt's error (money is settled or being reclaimed).
    lastError ??= new ProviderFailedError('no provider could serve the request');
    const canceled = lastError instanceof CanceledError || ctx.signal.aborted;
    if (!ctx.opened) {
      // No token was ever taken: no reservation, no money; the request is in the audit as refused.
      this.admission.recordRefused(ctx.requestId, ctx.req, ctx.model, lastError, lastError);
      this.outcomes.finished(ctx.t0, 'error', lastError, null, null);
      return ctx.reply.error(lastError, ctx.requestId);
    }
    const row = finishUnserved(this.d, ctx.requestId, canceled ? 'canceled' : 'failed', lastError, this.clock);
    this.outcomes.finished(ctx.t0, 'error', lastError, row, null);
    this.outcomes.publish(row, null, false);
    await ctx.reply.error(canceled && !(lastError instanceof CanceledError) ? new CanceledError() : lastError, ctx.requestId);
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private background(what: string, work: () => Promise<unknown>): void {
    const p = work().catch((err) => this.logger.warn(`${what} did not finish; recovery resumes it`, { error: (err as Error).message }));
    this.work.add(p);
    void p.finally(() => this.work.delete(p));
  }

  /** A lease on the provider's session when the request and the provider may pay that way (null: pay by token). */
  private async sessionLease(ctx: RequestState, planned: PlannedAttempt): Promise<Lease | null> {
    const sessions = this.d.sessions;
    // /v1/responses pays by token (asked unstreamed when streamed, responses-stream.ts): its
    // balance-mode stream is not proven against a node here, and a token's change is.
    if (ctx.req.endpoint === '/v1/responses') return null;
    if (!sessions || !sessions.usable(ctx.req.stream, ctx.req.payment, planned.offer.provider.version ?? null)) return null;
    return sessions.lease({
      providerId: planned.providerId, providerUrl: planned.providerUrl, providerVersion: planned.offer.provider.version ?? null, mint: planned.mint, tokenMint: planned.tokenMint,
      worstMsat: Math.max(planned.reserveMsat, 1),
    }, ctx.signal);
  }

}

/** `req_` + 17 random letters and digits (~100 bits): unique, safe in payment ids, headers and file names. */
export function newRequestId(): string {
  return randomId('req_', 13, 17);
}

/**
 * A signal that aborts when either does, with its reason: what AbortSignal.any does, without its
 * cost on Node 20 (~0.03 ms a request in a profile). Both are this request's own, so the listeners
 * go with them.
 */
function eitherAborts(a: AbortSignal, b: AbortSignal): AbortSignal {
  const either = new AbortController();
  for (const s of [a, b]) {
    if (s.aborted) {
      either.abort(s.reason);
      break;
    }
    s.addEventListener('abort', () => either.abort(s.reason), { once: true });
  }
  return either.signal;
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/** Resolves true if `p` settles within `ms`, false otherwise (the timer never keeps the process up). */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
