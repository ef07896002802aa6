// One attempt of a request at one provider (DESIGN.md "The life of one request", steps 4-5):
// a FRESH token for this attempt alone (payment `<requestId>.<n>`, the provider's exact mint
// spelling, its proofs pending in the same transaction that writes the attempt row), the paid
// call, and at most one top-up when the node asks for more BEFORE redeeming.
//
// An answer to serve comes back unsettled (the lifecycle settles it with the usage it reads).
// Anything else is finished here, its money handled by what became of the token - decided by
// the classified body (protocol/outcome.ts), never by the status:
//   refunded (upstream error after redemption)  settle with the refund token, flag `refunded`
//   change in the headers of a broken answer      settle with it (the node kept the rest)
//   unspent / spent / unknown                     reclaim off the request path: the wallet asks
//                                                 the mint (NUT-07), then the refund endpoint,
//                                                 else records a loss with evidence; its outcome
//                                                 reaches the ledger as a late outcome
// The proofs of a failed attempt are never reused: the next attempt takes a new token.
import { ProviderCallCanceledError, ProviderCallError, ProviderMalformedError, ProviderTimeoutError, ProviderUnreachableError } from '../../protocol/call-errors.ts';
import type { Logger } from '../../protocol/logger.ts';
import type { PaidEndpoint } from '../../protocol/openai.ts';
import type { Refusal } from '../../protocol/outcome.ts';
import type { CallDeps, CallOutcome, CallRequest, CallTimeouts, OkAnswer, OkStream } from '../../protocol/provider-call.ts';
import { msatToSatCeil, msatToSatFloor } from '../../protocol/units.ts';
import type { DB } from '../../db/sqlite.ts';
import type { Payments, TakenToken } from '../../wallet/payments/index.ts';
import { CanceledError, ProviderFailedError, type DaemonError } from '../api/errors.ts';
import type { BreakerOutcome, PlannedAttempt } from '../route/index.ts';
import type { BudgetLimits, Budgets } from './budgets.ts';
import { UpstreamRequestError } from './errors.ts';
import type { RequestLedger } from './ledger.ts';
import type { Lease } from './session-contract.ts';
import { paymentFacts } from './payment-facts.ts';
import type { FactFlag } from './reconcile.ts';
import type { TopUpCap } from './topup-cap.ts';

/** What the request path needs of the wallet's payment path. */
export type PaymentPath = Pick<Payments, 'takeToken' | 'topUp' | 'settle' | 'reclaim' | 'bankToken' | 'onOutcome' | 'outcome'>;

export interface AttemptDeps {
  db: DB;
  ledger: RequestLedger;
  budgets: Budgets;
  payments: PaymentPath;
  call: (req: CallRequest, deps?: CallDeps) => Promise<CallOutcome>;
  callDeps?: CallDeps;
  timeouts?: Partial<CallTimeouts>;
  topUps: TopUpCap;
  /** The input fee the wallet will add to a token of `amountSat` at `mint`, estimated (sats). */
  feeSat(mint: string, amountSat: number): number;
  /** Money work off the request path (reclaims); the lifecycle keeps track of it. */
  background(what: string, work: () => Promise<unknown>): void;
  /** Monotonic ms, for durations. */
  now(): number;
  clock(): number;
  logger: Logger;
}

export interface AttemptInput {
  requestId: string;
  n: number;
  planned: PlannedAttempt;
  endpoint: PaidEndpoint;
  /** The body as this provider gets it (its model id). */
  body: Record<string, unknown>;
  client: BudgetLimits;
  /** The caller's cap for this request, sats. */
  maxSats?: number;
  /** The budget reservation admission made for the request (written with the first token), msat. */
  reservedMsat: number;
  signal: AbortSignal;
  /** Run first inside the token's transaction (admission's write with the first token); throwing takes nothing. */
  open?: () => void;
}

export type AttemptOutcome =
  /** An answer to serve: the token is spent, the attempt still pending in the ledger (settle it). */
  | { kind: 'ok'; paymentId: string; taken?: TakenToken; call: OkAnswer | OkStream; providerMs: number; topUps: number; session?: Lease }
  /** Finished (ledger and money done); `failover`: the next candidate may be tried. */
  | { kind: 'failed'; paymentId: string; failover: boolean; breaker: BreakerOutcome; error: DaemonError; summary: string; providerMs: number; refunded: boolean }
  /** No token could be taken (the wallet refused): nothing was written, nothing sent. */
  | { kind: 'unpaid'; error: unknown };

/** How a failed attempt ends: for the ledger, the breakers, the caller and the money. */
export interface Failure {
  httpStatus: number | null;
  /** Stable, for the audit (upstream_error, timeout, need_more, ...). */
  errorCode: string;
  error: string;
  breaker: BreakerOutcome;
  failover: boolean;
  apiError: DaemonError;
  money: { kind: 'settle'; token: string | null; refunded: boolean } | { kind: 'reclaim' };
}

export async function runAttempt(d: AttemptDeps, a: AttemptInput): Promise<AttemptOutcome> {
  const p = a.planned;
  const paymentId = `${a.requestId}.${a.n}`;
  let taken: TakenToken;
  try {
    taken = await d.payments.takeToken({
      paymentId, mint: p.mint, tokenMint: p.tokenMint, amountSat: p.tokenSat, providerUrl: p.providerUrl, policy: overpayPolicy(p.tokenSat, capsOf(d, a, p.tokenSat)),
      inTransaction: (t) => {
        a.open?.();
        d.ledger.startAttempt({
          requestId: a.requestId, n: a.n, providerId: p.providerId, providerUrl: p.providerUrl, modelId: p.model, mint: t.tokenMint,
          paymentId, price: p.price, sentSat: t.sentSat, feeSat: t.feeSat, startedAt: d.clock(),
        });
      },
    });
  } catch (err) {
    return { kind: 'unpaid', error: err };
  }

  let providerMs = 0;
  let topUps = 0;
  for (;;) {
    const t0 = d.now();
    let outcome: CallOutcome;
    try {
      outcome = await d.call(
        { providerUrl: p.providerUrl, endpoint: a.endpoint, body: a.body, payment: { kind: 'xcashu', token: taken.token }, signal: a.signal, timeouts: d.timeouts },
        d.callDeps,
      );
    } catch (err) {
      providerMs += d.now() - t0;
      return failed(d, a, paymentId, transportFailure(err, taken.token), providerMs);
    }
    providerMs += d.now() - t0;
    if (outcome.kind === 'ok') return { kind: 'ok', paymentId, taken, call: outcome, providerMs, topUps };
    if (outcome.kind === 'need_more') {
      // Some nodes have been seen to send a token back even here: it is money, bank it.
      if (outcome.changeToken) d.payments.bankToken(paymentId, outcome.changeToken);
      const refused = topUps === 0 ? topUpRefusal(d, a, taken, outcome.amountRequiredMsat) : 'the node asked for more a second time';
      if (refused === null) {
        try {
          const amountSat = msatToSatCeil(outcome.amountRequiredMsat!);
          taken = await d.payments.topUp(paymentId, amountSat, {
            policy: overpayPolicy(amountSat, capsOf(d, a, amountSat)),
            inTransaction: (t) => void d.ledger.topUp(a.requestId, a.n, { sentSat: t.sentSat, feeSat: t.feeSat }),
          });
          topUps += 1;
          continue;
        } catch (err) {
          d.logger.warn('top-up failed; the token goes back to the wallet', { payment: paymentId, error: (err as Error).message });
          return failed(d, a, paymentId, needMoreFailure(outcome, `top-up failed: ${(err as Error).message}`), providerMs);
        }
      }
      return failed(d, a, paymentId, needMoreFailure(outcome, refused), providerMs);
    }
    return failed(d, a, paymentId, refusalFailure(outcome), providerMs);
  }
}

/** What bounds one token's face value: the caller's caps on this request. */
export interface TokenCaps {
  /** The model's max_cost in msat (0: none listed). */
  maxCostMsat: number;
  /** The caller's cap for this request (x-satroute-max-sats, the key's per-request cap), sats. */
  maxSats?: number;
  /** The request's budget reservation, msat. */
  reservedMsat: number;
  /** The input fee the reservation and the caps allow for this token (estimated high), sats. */
  feeSat: number;
}

/**
 * When the exact denominations are not at hand, a token may carry more than the node checks -
 * up to its own value again (at least 8 sat) - rather than wait for a swap at the mint on the
 * request path (100 ms to seconds under load): the node returns it with the change. But a node
 * may keep the whole token (a stream without usage, change never returned), so the overpayment
 * stays within every cap of the caller: the model's max_cost, `maxSats` less the token and its
 * fee, and the budget reservation less the same. No room: exact only (the wallet swaps).
 */
export function overpayPolicy(tokenSat: number, caps: TokenCaps): { allowOverpay: boolean; maxOverpaySat: number } {
  const limits = [Math.max(8, tokenSat), msatToSatFloor(caps.reservedMsat) - tokenSat - caps.feeSat];
  if (caps.maxCostMsat > 0) limits.push(msatToSatFloor(caps.maxCostMsat) - tokenSat);
  if (caps.maxSats !== undefined) limits.push(caps.maxSats - tokenSat - caps.feeSat);
  const maxOverpaySat = Math.max(0, Math.min(...limits));
  return { allowOverpay: maxOverpaySat > 0, maxOverpaySat };
}

/** The caps on a token of `amountSat` for this attempt, against the reservation held now (a top-up may have raised it). */
function capsOf(d: AttemptDeps, a: AttemptInput, amountSat: number): TokenCaps {
  const held = d.budgets.get(a.requestId);
  const reservedMsat = held?.state === 'held' ? Math.max(held.reservedMsat, a.reservedMsat) : a.reservedMsat;
  return { maxCostMsat: a.planned.price.maxCostMsat, maxSats: a.maxSats, reservedMsat, feeSat: d.feeSat(a.planned.mint, amountSat) };
}

/** Why the node's "too little" is not answered with a top-up, or null when it is (the window's allowance is taken). */
function topUpRefusal(d: AttemptDeps, a: AttemptInput, taken: TakenToken, requiredMsat: number | null): string | null {
  const p = a.planned;
  if (requiredMsat === null) return 'the node did not say how much it needs';
  const amountSat = msatToSatCeil(requiredMsat);
  if (amountSat <= taken.amountSat) return `the node asks for ${amountSat} sat, no more than the token's ${taken.amountSat}`;
  if (p.price.maxCostMsat > 0 && amountSat * 1000 > p.price.maxCostMsat) return `the node asks for ${amountSat} sat, above the model's max_cost`;
  const withFeeSat = amountSat + d.feeSat(p.mint, amountSat);
  if (a.maxSats !== undefined && withFeeSat > a.maxSats) return `the node asks for ${amountSat} sat, above the caller's max of ${a.maxSats}`;
  try {
    d.budgets.extend(a.requestId, a.client, withFeeSat * 1000);
  } catch (err) {
    return `the node asks for ${amountSat} sat: ${(err as Error).message}`;
  }
  if (!d.topUps.take(p.providerId, amountSat)) return 'the top-up cap for this provider is reached';
  return null;
}

/** The failed attempt's ledger row and money, then the outcome for the lifecycle. */
function failed(d: AttemptDeps, a: AttemptInput, paymentId: string, f: Failure, providerMs: number): AttemptOutcome {
  const end = { status: 'failed' as const, httpStatus: f.httpStatus, errorCode: f.errorCode, error: f.error, endedAt: d.clock() };
  const money = f.money;
  if (money.kind === 'settle') {
    d.db.transaction(() => {
      const facts = paymentFacts(d.payments.settle(paymentId, money.token));
      const extra: FactFlag[] = money.refunded ? ['refunded'] : [];
      d.ledger.finishAttempt(a.requestId, a.n, { ...end, changeSat: facts.returnedSat, lostSat: facts.lostSat, facts: [...facts.facts, ...extra] });
    }).immediate();
  } else {
    // The attempt is finished first, so the reclaim's outcome always finds it (a late outcome).
    d.ledger.finishAttempt(a.requestId, a.n, end);
    d.background(`reclaim ${paymentId}`, () => d.payments.reclaim(paymentId));
  }
  return { kind: 'failed', paymentId, failover: f.failover, breaker: f.breaker, error: f.apiError, summary: `${f.errorCode}${f.httpStatus ? ` ${f.httpStatus}` : ''}`, providerMs, refunded: money.kind === 'settle' && money.refunded };
}

const upstream = (what: string) => new ProviderFailedError(what);

function needMoreFailure(r: Refusal, why: string): Failure {
  return {
    httpStatus: r.status, errorCode: 'need_more', error: why, breaker: { kind: 'neutral' }, failover: true,
    apiError: upstream(`the provider asked for a bigger token than satroute will send (${why})`), money: { kind: 'reclaim' },
  };
}

/** A node's refusal, decided by its classified body. */
export function refusalFailure(r: Refusal): Failure {
  const status = r.status;
  const msg = r.message ?? r.errorType ?? `HTTP ${status}`;
  const reclaim = { kind: 'reclaim' } as const;
  switch (r.kind) {
    case 'need_more':
      return needMoreFailure(r, 'no top-up');
    case 'upstream_error': {
      const money: Failure['money'] = r.refundToken ? { kind: 'settle', token: r.refundToken, refunded: true } : reclaim;
      const code = r.upstreamStatus;
      if (r.rateLimited) {
        return { httpStatus: status, errorCode: 'upstream_rate_limited', error: msg, breaker: { kind: 'rate_limited', retryAfterMs: r.retryAfterMs }, failover: true, apiError: new ProviderFailedError('the provider is rate limited', r.retryAfterMs === undefined ? undefined : Math.ceil(r.retryAfterMs / 1000)), money };
      }
      // The upstream refused the caller's request itself (after redemption, refunded): the same
      // body would fail anywhere. Not the provider's fault.
      if (code === 400 || code === 422) {
        return { httpStatus: status, errorCode: 'upstream_request_error', error: msg, breaker: { kind: 'neutral' }, failover: false, apiError: new UpstreamRequestError(code, `the provider's upstream refused the request: ${msg}`), money };
      }
      // A 404 from the upstream: this model's path is unknown there, not the whole provider.
      const scope = code === 404 ? 'model' : 'provider';
      return { httpStatus: status, errorCode: 'upstream_error', error: `upstream ${code}: ${msg}`, breaker: { kind: 'failure', scope, error: `upstream ${code}` }, failover: true, apiError: upstream(`the provider's upstream failed (${code})`), money };
    }
    case 'rate_limited':
      return { httpStatus: status, errorCode: 'rate_limited', error: msg, breaker: { kind: 'rate_limited', retryAfterMs: r.retryAfterMs }, failover: true, apiError: new ProviderFailedError('the provider is rate limited', r.retryAfterMs === undefined ? undefined : Math.ceil(r.retryAfterMs / 1000)), money: reclaim };
    case 'request_error':
      return { httpStatus: status, errorCode: 'request_error', error: msg, breaker: { kind: 'neutral' }, failover: false, apiError: new UpstreamRequestError(status, `the provider refused the request: ${msg}`), money: reclaim };
    case 'rejected_echo':
      // Our own token back, not redeemed (its mint unreachable from the node, a swap that failed):
      // reclaimed, never banked as change.
      return { httpStatus: status, errorCode: 'payment_rejected', error: msg, breaker: { kind: 'failure', scope: 'provider', error: `token refused (${r.errorCode ?? status})` }, failover: true, apiError: upstream(`the provider refused the payment (${r.errorCode ?? status})`), money: reclaim };
    case 'rejected':
    case 'insufficient_quota':
      return { httpStatus: status, errorCode: 'payment_rejected', error: msg, breaker: { kind: 'failure', scope: 'provider', error: `payment refused (${status})` }, failover: true, apiError: upstream(`the provider refused the payment (${status})`), money: reclaim };
    case 'internal_error':
      return { httpStatus: status, errorCode: 'internal_error', error: msg, breaker: { kind: 'failure', scope: 'provider', error: `internal error ${status}` }, failover: true, apiError: upstream(`the provider failed (${status})`), money: reclaim };
  }
}

/** No answer to classify: the transport broke, a timer ran out, the answer was garbage, or our caller left. */
export function transportFailure(err: unknown, sentToken: string): Failure {
  if (!(err instanceof ProviderCallError)) {
    return { httpStatus: null, errorCode: 'call_failed', error: (err as Error)?.message ?? String(err), breaker: { kind: 'failure', scope: 'provider', error: 'call failed' }, failover: true, apiError: upstream('the provider call failed'), money: { kind: 'reclaim' } };
  }
  // A token in the headers that is not our own is change (the node redeemed ours): bank it.
  const change = err.changeToken && err.changeToken !== sentToken ? err.changeToken : undefined;
  const money: Failure['money'] = change ? { kind: 'settle', token: change, refunded: false } : { kind: 'reclaim' };
  const base = { httpStatus: err.status ?? null, errorCode: err.code, error: err.message, money };
  if (err instanceof ProviderCallCanceledError) return { ...base, breaker: { kind: 'neutral' }, failover: false, apiError: new CanceledError() };
  const what = err instanceof ProviderUnreachableError ? 'unreachable' : err instanceof ProviderTimeoutError ? `${err.timeout.replace('_', ' ')} timeout` : err instanceof ProviderMalformedError ? 'malformed answer' : err.code.replace('_', ' ');
  return { ...base, breaker: { kind: 'failure', scope: 'provider', error: what }, failover: err.eventsDelivered === 0, apiError: upstream(`the provider failed: ${what}`) };
}
