// Delivering what the attempt that served sent back (DESIGN.md "The life of one request", the
// answer): a JSON answer is settled in one commit, reported, then written to the client; a stream
// is passed on event by event and settled when it ends. A stream that breaks before its first
// event reaches the client is settled as a failed attempt and the lifecycle fails over; after it,
// the stream ends with an explicit error - never a silent switch - and the charge is settled all
// the same. The lifecycle (lifecycle.ts) calls these once an attempt is paid and answered.
import type { Usage } from '../../protocol/cost.ts';
import { msatToSatCeil } from '../../protocol/units.ts';
import type { OkAnswer, OkStream } from '../../protocol/provider-call.ts';
import type { TurnQueue } from '../../wallet/turns.ts';
import { CanceledError, ProviderFailedError } from '../api/errors.ts';
import type { PlannedAttempt, RoutePlan } from '../route/index.ts';
import type { AttemptOutcome } from './attempt.ts';
import type { Accepted, ApiRequest, Done } from './contract.ts';
import type { RequestRow } from './ledger.ts';
import type { LifecycleDeps } from './lifecycle-deps.ts';
import type { OutcomeReporter } from './outcomes.ts';
import { doneOf, type Reply } from './reply.ts';
import { replayResponse, replaysStream } from './responses-stream.ts';
import { remainingBalanceMsat } from './session-api.ts';
import { settleSessionBrokenEarly, settleSessionServed } from './session-attempt.ts';
import { settleBrokenEarly, settleServed, type ServedAttempt } from './settle.ts';

/** One request as the lifecycle carries it from admission to its answer. */
export interface RequestState {
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

/** An attempt the provider answered (paid by token or from a session). */
export type ServedOutcome = Extract<AttemptOutcome, { kind: 'ok' }>;

/** What delivery needs from the lifecycle. */
export interface DeliveryDeps {
  d: LifecycleDeps;
  outcomes: OutcomeReporter;
  /** Requests settling together settle one per event-loop turn (lifecycle.ts). */
  turns: TurnQueue;
  now: () => number;
  clock: () => number;
}

/** A JSON answer: settle (one commit), report, then answer the client. */
export async function serveAnswer(x: DeliveryDeps, ctx: RequestState, planned: PlannedAttempt, r: ServedOutcome, call: OkAnswer): Promise<void> {
  await x.turns.pass();
  const settled = r.session
    ? settleSessionServed(x.d, x.d.sessions!, r.session, servedAttempt(ctx, planned, r), call.reported.usage, call.reported.costMsat, remainingBalanceMsat(call.body), 'succeeded', null, x.clock)
    : settleServed(x.d, servedAttempt(ctx, planned, r), call.reported.usage, call.reported.costMsat, 'succeeded', null, x.clock);
  x.outcomes.served(planned, r, settled.attempt);
  const done = doneFor(x, ctx, settled.request, call.reported.usage);
  x.outcomes.finished(ctx.t0, 'ok', null, settled.request, null, done.overheadMs);
  x.outcomes.publish(settled.request, call.reported.usage, false);
  await ctx.reply.end(async () => {
    ctx.reply.accept(acceptedOf(ctx, planned));
    // A streamed /v1/responses was asked of the node unstreamed (responses-stream.ts): replayed.
    if (replaysStream(ctx.req.endpoint, ctx.req.stream)) await replayResponse(ctx.reply.sink, call.body, done);
    else await ctx.reply.sink.response(call.body, done);
  });
}

/**
 * A stream: each event passed on as it arrives. Before its first event reaches the client a
 * broken stream fails over (the attempt is settled as failed); after it, the stream ends with
 * an explicit error - never a silent switch - and the charge is settled all the same.
 */
export async function serveStream(x: DeliveryDeps, ctx: RequestState, planned: PlannedAttempt, r: ServedOutcome, call: OkStream): Promise<'served' | 'failover'> {
  const events = call.events;
  const sink = ctx.reply.sink;
  const t0 = x.now();
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
        firstChunkMs = x.now() - ctx.t0;
        // Kept for the settlement's commit: a commit of its own here (an fsync per stream) stalled the event loop under load.
        firstByteAt = x.clock();
        ctx.reply.accept(acceptedOf(ctx, planned));
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
  ctx.providerMs += x.now() - t0;
  await x.turns.pass();
  const canceled = clientGone || ctx.signal.aborted;
  const reported = events.reported();

  if (delivered === 0 && broken && !canceled) {
    // Nothing reached the client: the attempt failed (the node kept the token; its change is
    // banked) and the next candidate may serve.
    if (r.session) settleSessionBrokenEarly(x.d, x.d.sessions!, r.session, servedAttempt(ctx, planned, r), reported.costMsat, broken, x.clock);
    else settleBrokenEarly(x.d, servedAttempt(ctx, planned, r), broken, x.clock);
    x.d.router.report(planned, { breaker: { kind: 'failure', scope: 'provider', error: 'stream broke before its first event' }, latencyMs: r.providerMs });
    x.d.metrics?.attemptFinished(planned.providerId, 'failed');
    ctx.tried.push({ provider: planned.providerId, outcome: 'stream_broken' });
    return 'failover';
  }

  const status = canceled ? 'canceled' : broken ? 'failed' : 'succeeded';
  const err = canceled ? new CanceledError() : broken ? new ProviderFailedError(`the provider's stream broke after ${delivered} events: ${broken.message}`) : null;
  const served = { ...servedAttempt(ctx, planned, r), firstByteAt };
  const settled = r.session
    ? settleSessionServed(x.d, x.d.sessions!, r.session, served, reported.usage, reported.costMsat, remainingMsat, status, err, x.clock)
    : settleServed(x.d, served, reported.usage, reported.costMsat, status, err, x.clock);
  if (status === 'succeeded') x.outcomes.served(planned, r, settled.attempt);
  else x.d.router.report(planned, { breaker: canceled ? { kind: 'neutral' } : { kind: 'failure', scope: 'provider', error: 'stream broke' }, latencyMs: r.providerMs });
  if (status !== 'succeeded') x.d.metrics?.attemptFinished(planned.providerId, 'failed');
  const done = doneFor(x, ctx, settled.request, reported.usage);
  x.outcomes.finished(ctx.t0, status === 'succeeded' ? 'ok' : 'error', err, settled.request, firstChunkMs, done.overheadMs);
  x.outcomes.publish(settled.request, reported.usage, false);
  if (err) {
    await ctx.reply.error(err, ctx.requestId);
  } else {
    await ctx.reply.end(async () => {
      ctx.reply.accept(acceptedOf(ctx, planned));
      await sink.done(done);
    });
  }
  return 'served';
}

function servedAttempt(ctx: RequestState, planned: PlannedAttempt, r: ServedOutcome): ServedAttempt {
  return { requestId: ctx.requestId, n: planned.n, paymentId: r.paymentId, model: planned.model, httpStatus: r.call.status, changeToken: r.call.changeToken };
}

function acceptedOf(ctx: RequestState, planned: PlannedAttempt): Accepted {
  const a: Accepted = {
    requestId: ctx.requestId, provider: planned.providerId, providerUrl: planned.providerUrl, model: planned.model,
    reservedSats: msatToSatCeil(ctx.reservedMsat), payment: ctx.payment, failedAttempts: ctx.tried.length,
  };
  if (ctx.req.explain) {
    a.explain = { skipped: ctx.plan.skipped.map((s) => ({ provider: s.providerId, reason: `${s.reason}: ${s.detail}` })), tried: [...ctx.tried] };
  }
  return a;
}

/** The answer's `satroute` figures: the request row as settled, and the daemon's own time (its time less the providers'). */
function doneFor(x: DeliveryDeps, ctx: RequestState, request: RequestRow, usage: Usage | null): Done {
  return doneOf(request, usage, Math.max(0, x.now() - ctx.t0 - ctx.providerMs));
}

const clip = (s: string) => (s.length > 200 ? `${s.slice(0, 200)}...` : s);
