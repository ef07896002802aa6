// Why a provider was left out of a request's candidates: kept for `x-satroute-explain: 1`,
// the audit and the `no_provider` error.
import { msatToSatCeil } from '../../protocol/pricing.ts';
import { displayName, type Offer } from '../market-index.ts';

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

/** The skip of one offer, with its reason and a line for people. */
export function skipOf(offer: Offer, reason: SkipReason, detail: string): Skip {
  const p = offer.provider;
  return { providerId: p.id, name: displayName(p), url: p.url ?? p.urls[0] ?? '', model: offer.model.id, reason, detail };
}

/** An offer left out for its mints: 0 none we hold, 1 not enough at any (mints.ts). */
export function mintSkip(offer: Offer, why: 0 | 1, reserveMsat: number): Skip {
  if (why === 0) return skipOf(offer, 'no_common_mint', `accepts ${offer.mints.join(', ') || 'no mint'}; we hold none of them`);
  return skipOf(offer, 'insufficient_balance', `needs ${msatToSatCeil(reserveMsat)} sat + fee at ${offer.mints.join(', ')}`);
}

/** Why a breaker keeps an offer out, and until when (a closed gate of breaker.ts; typed here by shape, as breaker.ts leads back to this file). */
export function gateDetail(g: { reason: 'breaker_open' | 'probe_in_flight' | 'rate_limited'; scope: string; until: number | null; failures: number }): string {
  const at = (ms: number | null) => (ms === null ? '' : ` until ${new Date(ms).toISOString()}`);
  const scope = g.scope === 'model' ? ' for this model' : '';
  if (g.reason === 'rate_limited') return `rate limited${scope}${at(g.until)}`;
  if (g.reason === 'probe_in_flight') return `half-open${scope}: its one probe is out`;
  return `breaker open${scope}${at(g.until)} after ${g.failures} failures`;
}
