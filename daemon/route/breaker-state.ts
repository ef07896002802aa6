// One circuit breaker's state and its transitions (the state machine of DESIGN.md "Circuit
// breaker"); daemon/route/breaker.ts keeps the breakers, their probe permits and persistence.
//
//   closed --3 consecutive failures--> open --(lookup after open time)--> half_open
//   half_open --probe succeeds--> closed        half_open --probe fails--> open (time doubled)
//
// One synchronous function per transition; a transition its state does not allow throws.
import { IllegalTransitionError } from './errors.ts';

export type BreakerState = 'closed' | 'open' | 'half_open';
export type BreakerScope = 'provider' | 'model';

/** One breaker. Everything but `probe` is persisted. */
export interface BreakerRecord {
  providerId: string;
  /** null: the provider as a whole. */
  modelId: string | null;
  state: BreakerState;
  /** Consecutive failures while closed. */
  failures: number;
  /** Re-opens since the breaker last closed: the open time is openBaseMs x 2^reopens. */
  reopens: number;
  openedAt: number | null;
  openUntil: number | null;
  lastFailureAt: number | null;
  lastError: string | null;
  /** A 429's Retry-After: no requests before this time. */
  cooldownUntil: number | null;
  /** The probe out in half-open (process memory only). */
  probe: { permitId: number; since: number } | null;
}

// ---- transitions: one synchronous function each; illegal ones throw ---------------------

/** closed -> open. */
export function trip(r: BreakerRecord, now: number, openMs: number): void {
  if (r.state !== 'closed') throw new IllegalTransitionError(r.state, 'trip');
  r.state = 'open';
  r.openedAt = now;
  r.openUntil = now + openMs;
}

/** open -> half_open (lazily at lookup once the open time is over, or forced when every candidate is open). */
export function halfOpen(r: BreakerRecord): void {
  if (r.state !== 'open') throw new IllegalTransitionError(r.state, 'halfOpen');
  r.state = 'half_open';
  r.probe = null;
}

/** half_open -> open, for longer: the probe failed. */
export function reopen(r: BreakerRecord, now: number, openMs: number): void {
  if (r.state !== 'half_open') throw new IllegalTransitionError(r.state, 'reopen');
  r.state = 'open';
  r.reopens += 1;
  r.openedAt = now;
  r.openUntil = now + openMs;
  r.probe = null;
}

/** half_open -> closed: the probe succeeded. */
export function close(r: BreakerRecord): void {
  if (r.state !== 'half_open') throw new IllegalTransitionError(r.state, 'close');
  r.state = 'closed';
  r.failures = 0;
  r.reopens = 0;
  r.openedAt = null;
  r.openUntil = null;
  r.probe = null;
}
