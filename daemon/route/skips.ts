// Why a provider was left out of a request's candidates: kept for `x-satroute-explain: 1`,
// the audit and the `no_provider` error.

export type SkipReason =
  /** None of its mints is one we hold sats at. */
  | 'no_common_mint'
  /** We hold its mints, but not enough at any of them for this token. */
  | 'insufficient_balance'
  /** The token the node requires is above the caller's max sats for this request. */
  | 'over_max_sats'
  /** The token the node requires is above the caller's remaining budget. */
  | 'over_budget'
  /** Its circuit breaker is open (provider, or provider+model). */
  | 'breaker_open'
  /** Half-open, and its one probe is already out. */
  | 'probe_in_flight'
  /** A 429 asked us to wait (Retry-After). */
  | 'rate_limited'
  /** It kept charging more than its listed price (beyond the node's BTC/USD drift). */
  | 'overcharging'
  /** It kept returning change that is not valid ecash. */
  | 'invalid_change';

export interface Skip {
  providerId: string;
  name: string;
  url: string;
  /** The provider's model id the offer was for. */
  model: string;
  reason: SkipReason;
  /** One line for people, e.g. "open until 12:00:31 after 3 failures". */
  detail: string;
}
