// Why a token could not be redeemed, as routstr-core v0.4.5 answers it (wallet.py
// classify_redemption_error, SPENT_TOKEN_CODES), and how a cashu-ts failure maps onto the
// exception the node's Python wallet would have raised.
import { HttpResponseError, MintOperationError, NetworkError, RateLimitError } from '@cashu/cashu-ts';

/** A redemption failure: HTTP status, error type and stable code of the node's answer. */
export class RedeemError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
    /** Whether the node echoes the token back in X-Cashu (only while it is still spendable). */
    readonly echo: boolean,
    /** The underlying exception's text, which nodes before v0.4.4 put in the answer. */
    readonly detail: string = message,
  ) {
    super(message);
    this.name = 'RedeemError';
  }
}

// One constructor per classify_redemption_error outcome (message and code as the node sends them).
export const redeemError = {
  consumed: (detail: string) => new RedeemError(500, 'token_consumed', 'cashu_token_consumed', 'Token was redeemed but could not be credited; do not retry', false, detail),
  sourceUnreachable: (detail = 'All connection attempts failed') =>
    new RedeemError(503, 'mint_unreachable', 'cashu_source_mint_unreachable', 'The mint that issued this Cashu token is unreachable; the token cannot be redeemed at another mint', true, detail),
  rateLimited: (detail = 'Cashu mint rate limited') => new RedeemError(503, 'mint_rate_limited', 'cashu_mint_rate_limited', 'Cashu mint rate-limited; retry after cooldown', true, detail),
  unreachable: (detail = 'Cashu mint is unreachable') => new RedeemError(503, 'mint_unreachable', 'cashu_mint_unreachable', 'Cashu mint is unreachable', true, detail),
  spent: (detail = 'Mint Error: Token already spent. (Code: 11001)') => new RedeemError(400, 'token_already_spent', 'cashu_token_already_spent', 'Cashu token already spent', false, detail),
  feesExceed: (detail: string) => new RedeemError(422, 'mint_error', 'cashu_token_swap_fees_exceed_amount', 'Token value is too small to cover swap fees', true, detail),
  foreignSwapFailed: (detail = 'Failed to melt token from foreign mint') => new RedeemError(422, 'mint_error', 'cashu_foreign_mint_swap_failed', 'Failed to swap token from foreign mint', true, detail),
  invalid: (detail = 'Invalid Cashu token') => new RedeemError(400, 'invalid_token', 'invalid_cashu_token', 'Invalid Cashu token', true, detail),
  zeroValue: (detail: string) => new RedeemError(400, 'cashu_error', 'cashu_token_zero_value', 'Failed to redeem Cashu token: token yielded no value', false, detail),
  /** A ValueError nothing more specific matched (e.g. "Multiple keysets per token currently not supported"). */
  failed: (detail: string) => new RedeemError(400, 'cashu_error', 'cashu_token_redemption_failed', 'Failed to redeem Cashu token', true, detail),
  /** Anything classify_redemption_error returns None for: a generic 500, token not echoed. */
  internal: (detail: string) => new RedeemError(500, 'api_error', 'internal_error', 'Internal error during token redemption', false, detail),
};

/** classify_redemption_error's text rules, for a mint or value error with this message. */
export function classifyText(text: string, isValueError: boolean): RedeemError {
  const lowered = text.toLowerCase();
  if (lowered.includes('already spent')) return redeemError.spent(text);
  if (['insufficient', 'melt fee', 'exceed token amount', 'estimate fees'].some((s) => lowered.includes(s))) return redeemError.feesExceed(text);
  if (lowered.includes('failed to melt')) return redeemError.foreignSwapFailed(text);
  if ((lowered.includes('invalid') || lowered.includes('decode')) && lowered.includes('token')) return redeemError.invalid(text);
  if (lowered.includes('must be positive') || lowered.includes('yielded no value')) return redeemError.zeroValue(text);
  return isValueError ? redeemError.failed(text) : redeemError.internal(text);
}

/** How a mint call failed on the wire: connection refused (httpx ConnectError), or lost after sending. */
export type TransportFailure = 'refused' | 'lost';

export function transportFailure(err: unknown): TransportFailure | null {
  let lost = err instanceof NetworkError;
  for (let e: unknown = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ECONNREFUSED') return 'refused';
    if (typeof code === 'string' && /^(ECONNRESET|EPIPE|ETIMEDOUT|UND_ERR_SOCKET|UND_ERR_CLOSED)$/.test(code)) lost = true;
  }
  return lost ? 'lost' : null;
}

/** The text routstr's Wallet.raise_on_error_request gives a mint's error answer: MintError("Mint Error: <detail> (Code: <code>)"). */
export function mintErrorText(err: unknown): string | null {
  if (err instanceof MintOperationError) return `Mint Error: ${err.message} (Code: ${err.code})`;
  if (err instanceof HttpResponseError && !(err instanceof RateLimitError)) return `Mint Error: ${err.message}`;
  return null;
}

export function isRateLimited(err: unknown): err is RateLimitError {
  return err instanceof RateLimitError;
}
