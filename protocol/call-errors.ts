// Failures of one paid call that are not an answer of the node: the transport broke, a timer
// ran out, the body was too big or not what the endpoint answers, or our caller canceled.
// Callers branch on the class (or the stable `code`), never on the message. Each says whether
// the request could have reached the node, and carries what the response headers already
// told - above all a change or refund token in `X-Cashu`, which is money even when the body
// is lost (a node that keeps the upstream's Content-Length after re-serialising the body
// cuts its own answer short; ROUTSTR.md section 4).
import type { Reported } from './cost.ts';

/** Could the request have reached the node? no: never connected; unknown: sent, no answer; yes: it answered. */
export type Reach = 'no' | 'unknown' | 'yes';

export type CallPhase = 'connect' | 'send' | 'body';

export type CallErrorCode = 'unreachable' | 'timeout' | 'connection_lost' | 'too_large' | 'malformed' | 'canceled';

export interface CallErrorContext {
  reached: Reach;
  phase: CallPhase;
  /** From the response headers, once they arrived. */
  status?: number;
  requestId?: string;
  /** The X-Cashu response header (change or refund), once the headers arrived. */
  changeToken?: string;
  /** Stream events handed to the caller before the failure (0: failover is still possible). */
  eventsDelivered?: number;
  /** Usage and cost read before the failure. */
  reported?: Reported;
  /** The request went out on a reused keep-alive connection. */
  reusedSocket?: boolean;
  cause?: unknown;
}

export abstract class ProviderCallError extends Error {
  abstract readonly code: CallErrorCode;
  readonly reached: Reach;
  readonly phase: CallPhase;
  readonly status?: number;
  readonly requestId?: string;
  readonly changeToken?: string;
  readonly eventsDelivered: number;
  readonly reported?: Reported;
  readonly reusedSocket: boolean;

  constructor(message: string, ctx: CallErrorContext) {
    super(message, ctx.cause === undefined ? undefined : { cause: ctx.cause });
    this.reached = ctx.reached;
    this.phase = ctx.phase;
    this.status = ctx.status;
    this.requestId = ctx.requestId;
    this.changeToken = ctx.changeToken;
    this.eventsDelivered = ctx.eventsDelivered ?? 0;
    this.reported = ctx.reported;
    this.reusedSocket = ctx.reusedSocket ?? false;
  }
}

/** No connection could be made (refused, no route, name not found, TLS failed): never reached the node. */
export class ProviderUnreachableError extends ProviderCallError {
  override name = 'ProviderUnreachableError';
  readonly code = 'unreachable';
}

export type TimeoutKind = 'connect' | 'first_byte' | 'idle' | 'total';

export class ProviderTimeoutError extends ProviderCallError {
  override name = 'ProviderTimeoutError';
  readonly code = 'timeout';
  constructor(
    readonly timeout: TimeoutKind,
    readonly afterMs: number,
    ctx: CallErrorContext,
  ) {
    super(`provider ${timeout.replace('_', ' ')} timeout after ${afterMs} ms`, ctx);
  }
}

/** The connection was reset or closed early, after it was established. */
export class ProviderConnectionLostError extends ProviderCallError {
  override name = 'ProviderConnectionLostError';
  readonly code = 'connection_lost';
}

export class ProviderBodyTooLargeError extends ProviderCallError {
  override name = 'ProviderBodyTooLargeError';
  readonly code = 'too_large';
  constructor(
    readonly limitBytes: number,
    ctx: CallErrorContext,
  ) {
    super(`provider answer over ${limitBytes} bytes`, ctx);
  }
}

/** A 200 whose body is not JSON, or not the shape the endpoint answers. */
export class ProviderMalformedError extends ProviderCallError {
  override name = 'ProviderMalformedError';
  readonly code = 'malformed';
}

/** Our caller gave up (its AbortSignal fired). */
export class ProviderCallCanceledError extends ProviderCallError {
  override name = 'ProviderCallCanceledError';
  readonly code = 'canceled';
}
