// One request from admission to settlement (DESIGN.md "The life of one request"): the hub that
// HTTP and WebSocket both enter through (contract.ts RequestHandler). It alone calls the router,
// the wallet's payment path and the provider client.
//
//   admission   plan (the wallet's spendable sats per mint, the caller's max sats and remaining
//               budget, policy, pin), then ONE transaction: the budget reservation at the plan's
//               worst case (its largest token plus the mint's input fee), the request row, and -
//               in the same commit, since every commit is an fsync - the first token's proofs
//               going pending with its attempt row
//   attempts    at most 3, each its own payment `<requestId>.<n>` with fresh proofs (attempt.ts);
//               failover only before the first byte reaches the client
//   settle      ONE transaction: the wallet's settle (proofs spent, change queued), the attempt
//               reconciled, the request finished, the budget settled at the real cost; then the
//               breakers and statistics, the metrics, the `payments` event, the client's answer
//   late        the wallet's later outcomes (late.ts): change refused, reclaims, refunds, losses
//
// A sat is never "probably fine": the request row and its attempt rows are written before any
// byte goes out, and every path out of here - served, failed, canceled, crashed (recover.ts) -
// ends them with the wallet's facts.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { nullLogger, type Logger } from '../../protocol/logger.ts';
import { REQUEST_TIMEOUT_DEFAULTS, type LifecycleDeps } from './lifecycle-deps.ts';
import type { Usage } from '../../protocol/cost.ts';
import { msatToSatCeil } from '../../protocol/units.ts';
import { callProvider, type CallDeps, type CallOutcome, type CallRequest, type CallTimeouts, type OkAnswer, type OkStream } from '../../protocol/provider-call.ts';
import type { DB } from '../../db/sqlite.ts';
import { BudgetExceededError, CanceledError, PaymentFailedError, ProviderFailedError, type DaemonError } from '../api/errors.ts';
import type { DaemonMetrics } from '../api/metrics.ts';
import type { PlannedAttempt, RoutePlan, Router } from '../route/index.ts';
import { runAttempt, type AttemptDeps, type AttemptOutcome, type PaymentPath } from './attempt.ts';
import type { Budgets } from './budgets.ts';
import { Admission } from './admission.ts';
import type { Accepted, ApiRequest, Done, RequestHandler, ResponseSink } from './contract.ts';
import { ShuttingDownError } from './errors.ts';
import type { EventHub } from './events.ts';
import type { RequestLedger, RequestRow } from './ledger.ts';
import { OutcomeReporter } from './outcomes.ts';
import { doneOf, Reply } from './reply.ts';
import { replayResponse, replaysStream, xcashuBody } from './responses-stream.ts';
import { finishUnserved, settleBrokenEarly, settleServed, type ServedAttempt } from './settle.ts';
import { TOPUP_CAP_DEFAULTS, TopUpCap, type TopUpCapOptions } from './topup-cap.ts';
import { runSessionAttempt, settleSessionBrokenEarly, settleSessionServed } from './session-attempt.ts';
import { remainingBalanceMsat } from './session-api.ts';
import type { Lease, SessionManager } from './sessions.ts';
import { TurnQueue } from '../../wallet/turns.ts';

export { REQUEST_TIMEOUT_DEFAULTS, type LifecycleDeps, type LifecycleOptions } from './lifecycle-deps.ts';

interface Ctx {
  req: ApiRequest;
  requestId: string;
  model: string;
  signal: AbortSignal;
  reply: Reply;
  t0: number;
  plan: RoutePlan;
  maxSats?: number;
  reservedMsat: number;
  /** The request row and its reservation are written (with the first token taken). */
  opened: boolean;
  providerMs: number;
  tried: { provider: string; outcome: string }[];
  /** How the attempt serving (or the latest one) pays. */
  payment: 'xcashu' | 'session';
}

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
    const signal = AbortSignal.any([req.signal, ctl.signal]);
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
    const ctx: Ctx = { req, requestId, model, signal, reply, t0, plan, maxSats, reservedMsat, opened: false, providerMs: 0, tried: [], payment: 'xcashu' };
    try {
      await this.attempts(ctx);
    } finally {
      this.d.router.release(plan);
    }
  }

  private async attempts(ctx: Ctx): Promise<void> {
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
      if (!r.call.stream) return this.serveAnswer(ctx, planned, r, r.call);
      if ((await this.serveStream(ctx, planned, r, r.call)) === 'served') return;
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

  /** A JSON answer: settle (one commit), report, then answer the client. */
  private async serveAnswer(ctx: Ctx, planned: PlannedAttempt, r: Extract<AttemptOutcome, { kind: 'ok' }>, call: OkAnswer): Promise<void> {
    await this.turns.pass();
    const settled = r.session
      ? settleSessionServed(this.d, this.d.sessions!, r.session, this.served(ctx, planned, r), call.reported.usage, call.reported.costMsat, remainingBalanceMsat(call.body), 'succeeded', null, this.clock)
      : settleServed(this.d, this.served(ctx, planned, r), call.reported.usage, call.reported.costMsat, 'succeeded', null, this.clock);
    this.outcomes.served(planned, r, settled.attempt);
    const done = this.doneOf(ctx, settled.request, call.reported.usage);
    this.outcomes.finished(ctx.t0, 'ok', null, settled.request, null, done.overheadMs);
    this.outcomes.publish(settled.request, call.reported.usage, false);
    await ctx.reply.end(async () => {
      ctx.reply.accept(this.acceptedOf(ctx, planned));
      // A streamed /v1/responses was asked of the node unstreamed (responses-stream.ts): replayed.
      if (replaysStream(ctx.req.endpoint, ctx.req.stream)) await replayResponse(this.sinkOf(ctx), call.body, done);
      else await this.sinkOf(ctx).response(call.body, done);
    });
  }

  /**
   * A stream: each event passed on as it arrives. Before its first event reaches the client a
   * broken stream fails over (the attempt is settled as failed); after it, the stream ends with
   * an explicit error - never a silent switch - and the charge is settled all the same.
   */
  private async serveStream(ctx: Ctx, planned: PlannedAttempt, r: Extract<AttemptOutcome, { kind: 'ok' }>, call: OkStream): Promise<'served' | 'failover'> {
    const events = call.events;
    const sink = this.sinkOf(ctx);
    const t0 = this.now();
    let delivered = 0;
    let firstChunkMs: number | undefined;
    let firstByteAt: number | undefined;
    let broken: Error | null = null;
    let clientGone = false;
    let remainingMsat: number | null = null;
    try {
      for await (const item of events) {
        if (r.session) remainingMsat = remainingBalanceMsat(item.json) ?? remainingMsat;
        if (item.kind === 'cost') continue;
        if (item.kind === 'error') {
          broken = new ProviderFailedError(`the provider's stream carried an error: ${clip(item.data)}`);
          events.cancel();
          break;
        }
        if (delivered === 0) {
          firstChunkMs = this.now() - ctx.t0;
          // Kept for the settlement's commit: a commit of its own here (an fsync per stream) stalled the event loop under load.
          firstByteAt = this.clock();
          ctx.reply.accept(this.acceptedOf(ctx, planned));
        }
        delivered += 1;
        try {
          await sink.chunk(item.json, item.event);
        } catch {
          clientGone = true;
          events.cancel();
          break;
        }
      }
    } catch (err) {
      broken = err as Error;
    }
    ctx.providerMs += this.now() - t0;
    await this.turns.pass();
    const canceled = clientGone || ctx.signal.aborted;
    const reported = events.reported();

    if (delivered === 0 && broken && !canceled) {
      // Nothing reached the client: the attempt failed (the node kept the token; its change is
      // banked) and the next candidate may serve.
      if (r.session) settleSessionBrokenEarly(this.d, this.d.sessions!, r.session, this.served(ctx, planned, r), reported.costMsat, broken, this.clock);
      else settleBrokenEarly(this.d, this.served(ctx, planned, r), broken, this.clock);
      this.d.router.report(planned, { breaker: { kind: 'failure', scope: 'provider', error: 'stream broke before its first event' }, latencyMs: r.providerMs });
      this.d.metrics?.attemptFinished(planned.providerId, 'failed');
      ctx.tried.push({ provider: planned.providerId, outcome: 'stream_broken' });
      return 'failover';
    }

    const status = canceled ? 'canceled' : broken ? 'failed' : 'succeeded';
    const err = canceled ? new CanceledError() : broken ? new ProviderFailedError(`the provider's stream broke after ${delivered} events: ${broken.message}`) : null;
    const served = { ...this.served(ctx, planned, r), firstByteAt };
    const settled = r.session
      ? settleSessionServed(this.d, this.d.sessions!, r.session, served, reported.usage, reported.costMsat, remainingMsat, status, err, this.clock)
      : settleServed(this.d, served, reported.usage, reported.costMsat, status, err, this.clock);
    if (status === 'succeeded') this.outcomes.served(planned, r, settled.attempt);
    else this.d.router.report(planned, { breaker: canceled ? { kind: 'neutral' } : { kind: 'failure', scope: 'provider', error: 'stream broke' }, latencyMs: r.providerMs });
    if (status !== 'succeeded') this.d.metrics?.attemptFinished(planned.providerId, 'failed');
    const done = this.doneOf(ctx, settled.request, reported.usage);
    this.outcomes.finished(ctx.t0, status === 'succeeded' ? 'ok' : 'error', err, settled.request, firstChunkMs, done.overheadMs);
    this.outcomes.publish(settled.request, reported.usage, false);
    if (err) {
      await ctx.reply.error(err, ctx.requestId);
    } else {
      await ctx.reply.end(async () => {
        ctx.reply.accept(this.acceptedOf(ctx, planned));
        await sink.done(done);
      });
    }
    return 'served';
  }

  // ---- settlement ------------------------------------------------------------------------------

  private served(ctx: Ctx, planned: PlannedAttempt, r: Extract<AttemptOutcome, { kind: 'ok' }>): ServedAttempt {
    return { requestId: ctx.requestId, n: planned.n, paymentId: r.paymentId, model: planned.model, httpStatus: r.call.status, changeToken: r.call.changeToken };
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private background(what: string, work: () => Promise<unknown>): void {
    const p = work().catch((err) => this.logger.warn(`${what} did not finish; recovery resumes it`, { error: (err as Error).message }));
    this.work.add(p);
    void p.finally(() => this.work.delete(p));
  }

  private acceptedOf(ctx: Ctx, planned: PlannedAttempt): Accepted {
    const a: Accepted = {
      requestId: ctx.requestId, provider: planned.providerId, providerUrl: planned.providerUrl, model: planned.model,
      reservedSats: msatToSatCeil(ctx.reservedMsat), payment: ctx.payment, failedAttempts: ctx.tried.length,
    };
    if (ctx.req.explain) {
      a.explain = { skipped: ctx.plan.skipped.map((s) => ({ provider: s.providerId, reason: `${s.reason}: ${s.detail}` })), tried: [...ctx.tried] };
    }
    return a;
  }

  /** A lease on the provider's session when the request and the provider may pay that way (null: pay by token). */
  private async sessionLease(ctx: Ctx, planned: PlannedAttempt): Promise<Lease | null> {
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

  private doneOf(ctx: Ctx, request: RequestRow, usage: Usage | null): Done {
    return doneOf(request, usage, Math.max(0, this.now() - ctx.t0 - ctx.providerMs));
  }

  private sinkOf(ctx: Ctx): ResponseSink {
    return ctx.reply.sink;
  }

}

/** `req_` + 17 random letters and digits (~100 bits): unique, safe in payment ids, headers and file names. */
export function newRequestId(): string {
  return `req_${randomBytes(13).toString('base64url').slice(0, 17).replace(/[-_]/g, 'x')}`;
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

const clip = (s: string) => (s.length > 200 ? `${s.slice(0, 200)}...` : s);

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
