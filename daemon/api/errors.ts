// The daemon's error tree, and the ONE function that turns any error - the daemon's, the
// wallet's, a zod validation failure, a file-system or SQLite failure - into what a client
// sees: an HTTP status, one of the WebSocket error codes of DESIGN.md, a message and whether
// retrying can help. Callers branch on classes and stable codes, never on message text; no
// raw ZodError, ENOENT or stack trace reaches a user, and every message is redacted.
import { ZodError } from 'zod';
import { redact } from '../../protocol/logger.ts';
import {
  InsufficientFundsError, InvalidTokenError, MintRejectedError, MintUnavailableError, ProofStateError,
  UntrustedMintError, WalletError, WalletLockedError,
} from '../../wallet/errors.ts';
import { PaymentStateError } from '../../wallet/errors.ts';

/** The WebSocket error codes (DESIGN.md "Interfaces"); HTTP errors carry the same code. */
export const API_ERROR_CODES = [
  'unauthorized', 'bad_request', 'budget_exceeded', 'no_provider', 'payment_failed', 'provider_failed', 'canceled', 'internal',
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/** OpenAI's error `type`s, so the official client raises the matching exception class. */
export type OpenAiErrorType =
  | 'invalid_request_error' | 'authentication_error' | 'permission_error' | 'not_found_error'
  | 'insufficient_quota' | 'api_error' | 'server_error';

/** What one error means to a client. */
export interface ApiError {
  status: number;
  code: ApiErrorCode;
  type: OpenAiErrorType;
  message: string;
  retryable: boolean;
  /** Seconds to wait before retrying, when known (sent as Retry-After). */
  retryAfterS?: number;
}

/** Base of the daemon's errors: each subclass fixes its status, code and type. */
export class DaemonError extends Error {
  override name = 'DaemonError';
  readonly status: number = 500;
  readonly code: ApiErrorCode = 'internal';
  readonly type: OpenAiErrorType = 'server_error';
  readonly retryable: boolean = false;
}

/** No key, an unknown key or a revoked key. */
export class UnauthorizedError extends DaemonError {
  override name = 'UnauthorizedError';
  override readonly status = 401;
  override readonly code = 'unauthorized';
  override readonly type = 'authentication_error';
  constructor(message = 'missing or invalid client key (Authorization: Bearer sr_...)') {
    super(message);
  }
}

/** A valid key without the scope a route needs (admin routes). */
export class ForbiddenError extends DaemonError {
  override name = 'ForbiddenError';
  override readonly status = 403;
  override readonly code = 'unauthorized';
  override readonly type = 'permission_error';
}

/** The caller's request is wrong (body, header, parameter). */
export class BadRequestError extends DaemonError {
  override name = 'BadRequestError';
  override readonly status: number = 400;
  override readonly code = 'bad_request';
  override readonly type = 'invalid_request_error';
}

export class PayloadTooLargeError extends BadRequestError {
  override name = 'PayloadTooLargeError';
  override readonly status = 413;
  constructor(readonly limitBytes: number) {
    super(`request body larger than ${limitBytes} bytes`);
  }
}

export class NotFoundError extends DaemonError {
  override name = 'NotFoundError';
  override readonly status = 404;
  override readonly code = 'bad_request';
  override readonly type = 'not_found_error';
}

export type BudgetLimit = 'per_request' | 'daily';

/**
 * The request's worst case does not fit the client's per-request cap or what is left of its
 * daily budget. 402, not 429: the official client retries 429 on its own, which cannot help.
 */
export class BudgetExceededError extends DaemonError {
  override name = 'BudgetExceededError';
  override readonly status = 402;
  override readonly code = 'budget_exceeded';
  override readonly type = 'insufficient_quota';
  constructor(readonly limit: BudgetLimit, readonly neededMsat: number, readonly availableMsat: number) {
    super(
      limit === 'per_request'
        ? `this request may cost up to ${msatText(neededMsat)}, above the key's cap of ${msatText(availableMsat)} per request`
        : `this request may cost up to ${msatText(neededMsat)}, but only ${msatText(availableMsat)} of the key's daily budget is left (it resets at 00:00 UTC)`,
    );
  }
}

/**
 * No provider can serve the request. `retryable`: some exist but none is usable right now
 * (breakers open, wallet short at their mints) - 503; otherwise nobody serves the model - 404.
 */
export class NoProviderError extends DaemonError {
  override name = 'NoProviderError';
  override readonly code = 'no_provider';
  override readonly status: number;
  override readonly type: OpenAiErrorType;
  override readonly retryable: boolean;
  constructor(message: string, opts: { retryable?: boolean } = {}) {
    super(message);
    this.retryable = opts.retryable ?? false;
    this.status = this.retryable ? 503 : 404;
    this.type = this.retryable ? 'server_error' : 'not_found_error';
  }
}

/** Every provider tried failed (or the one serving failed after the first byte). */
export class ProviderFailedError extends DaemonError {
  override name = 'ProviderFailedError';
  override readonly status = 502;
  override readonly code = 'provider_failed';
  override readonly type = 'api_error';
  override readonly retryable = true;
  constructor(message: string, readonly retryAfterS?: number) {
    super(message);
  }
}

/** The daemon could not pay (the wallet refused or the mint did not answer). */
export class PaymentFailedError extends DaemonError {
  override name = 'PaymentFailedError';
  override readonly status = 503;
  override readonly code = 'payment_failed';
  override readonly type = 'server_error';
  override readonly retryable: boolean;
  constructor(message: string, opts: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.retryable = opts.retryable ?? false;
  }
}

/** The client canceled (WS cancel, closed connection). 499 as nginx logs it; rarely seen. */
export class CanceledError extends DaemonError {
  override name = 'CanceledError';
  override readonly status = 499;
  override readonly code = 'canceled';
  override readonly type = 'invalid_request_error';
  constructor(message = 'request canceled by the client') {
    super(message);
  }
}

// ---- the one mapping ------------------------------------------------------------------------

const fromDaemon = (e: DaemonError): ApiError => ({
  status: e.status, code: e.code, type: e.type, message: e.message, retryable: e.retryable,
  ...(e instanceof ProviderFailedError && e.retryAfterS !== undefined ? { retryAfterS: e.retryAfterS } : {}),
});

const payment = (message: string, retryable: boolean): ApiError => ({ status: 503, code: 'payment_failed', type: 'server_error', message, retryable });
const internal = (message = 'internal error; the daemon log has the details'): ApiError => ({ status: 500, code: 'internal', type: 'server_error', message, retryable: false });

/** What the wallet's errors mean to a client: the operator's problem, never the caller's. */
function fromWallet(e: WalletError): ApiError {
  if (e instanceof InsufficientFundsError) return payment('the satroute wallet does not hold enough ecash for this request; its owner must fund it', false);
  if (e instanceof MintUnavailableError) return payment('the Cashu mint is not answering; try again shortly', true);
  if (e instanceof PaymentStateError) return payment('the payment could not be prepared; try again shortly', true);
  if (e instanceof ProofStateError) return payment('the wallet is busy with these funds; try again', true);
  if (e instanceof WalletLockedError) return payment('the wallet is held by another process', false);
  if (e instanceof MintRejectedError || e instanceof InvalidTokenError || e instanceof UntrustedMintError) return payment('the mint refused the payment', false);
  return payment('the payment failed', false);
}

/** A zod failure at the edge: the caller's input. Paths and messages only, never the raw issue dump. */
function fromZod(e: ZodError): ApiError {
  const issues = e.issues.slice(0, 5).map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message));
  const more = e.issues.length > 5 ? `; and ${e.issues.length - 5} more` : '';
  return { status: 400, code: 'bad_request', type: 'invalid_request_error', message: `invalid request: ${issues.join('; ')}${more}`, retryable: false };
}

// Node system errors (fs, sockets) and SQLite errors carry a stable `code`; the message often
// holds a path, so the user gets a sentence made from the code alone.
const SYSTEM_CODES: Record<string, { message: string; retryable: boolean }> = {
  ENOENT: { message: 'a file of the data directory is missing', retryable: false },
  EACCES: { message: 'the data directory is not accessible to the daemon', retryable: false },
  EPERM: { message: 'the data directory is not accessible to the daemon', retryable: false },
  ENOSPC: { message: 'the disk holding the data directory is full', retryable: false },
  EROFS: { message: 'the data directory is on a read-only file system', retryable: false },
  EMFILE: { message: 'the daemon has too many open files; try again shortly', retryable: true },
  SQLITE_BUSY: { message: 'the database is busy; try again shortly', retryable: true },
  SQLITE_FULL: { message: 'the disk holding the database is full', retryable: false },
  SQLITE_READONLY: { message: 'the database is read-only', retryable: false },
  SQLITE_CORRUPT: { message: 'the database is damaged', retryable: false },
};

function systemCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  if (Object.hasOwn(SYSTEM_CODES, code)) return code;
  const base = code.split('_').slice(0, 2).join('_'); // SQLITE_BUSY_SNAPSHOT -> SQLITE_BUSY
  return Object.hasOwn(SYSTEM_CODES, base) ? base : undefined;
}

/** Any error as the client sees it (HTTP status, WS code, message, retryable). */
export function toApiError(err: unknown): ApiError {
  let out: ApiError;
  if (err instanceof DaemonError) out = fromDaemon(err);
  else if (err instanceof WalletError) out = fromWallet(err);
  else if (err instanceof ZodError) out = fromZod(err);
  else if (err instanceof Error && err.name === 'AbortError') out = fromDaemon(new CanceledError());
  else {
    const code = systemCode(err);
    out = code ? { ...internal(`internal error: ${SYSTEM_CODES[code].message} (${code})`), retryable: SYSTEM_CODES[code].retryable } : internal();
  }
  return { ...out, message: redact(out.message) };
}

/** OpenAI's error body: `{"error":{"message","type","code","param"}}`. */
export function openAiErrorBody(e: ApiError): { error: { message: string; type: OpenAiErrorType; code: ApiErrorCode; param: null } } {
  return { error: { message: e.message, type: e.type, code: e.code, param: null } };
}

/**
 * Response headers for an error: `x-should-retry` tells the official OpenAI client whether its
 * automatic retry (on 408/409/429/5xx) can help - a wallet out of funds answers 503 but retrying
 * cannot fix it - and Retry-After when known.
 */
export function errorHeaders(e: ApiError): Record<string, string> {
  return { 'x-should-retry': String(e.retryable), ...(e.retryAfterS !== undefined ? { 'retry-after': String(e.retryAfterS) } : {}) };
}

/** The WebSocket error message for request `id`. */
export function wsErrorMessage(id: string | null, e: ApiError): { type: 'error'; id: string | null; code: ApiErrorCode; message: string; retryable: boolean } {
  return { type: 'error', id, code: e.code, message: e.message, retryable: e.retryable };
}

/** msat as sats for a message, exact (integer arithmetic): 1500 -> "1.500 sat". */
function msatText(msat: number): string {
  const whole = Math.trunc(msat / 1000);
  const rest = Math.abs(msat % 1000);
  return rest === 0 ? `${whole} sat` : `${whole}.${String(rest).padStart(3, '0')} sat`;
}
