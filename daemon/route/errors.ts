// The routing errors: callers (requests/lifecycle, the API error mapping) branch on the class
// and its stable `code`, never on the message text.
import type { Skip } from './skips.ts';

export class RouteError extends Error {
  override name = 'RouteError';
  /** A stable code for APIs and the audit. */
  readonly code: string = 'route_error';
}

/** No provider can take this request; `skipped` says why each known one was left out. */
export class NoProviderError extends RouteError {
  override name = 'NoProviderError';
  override readonly code = 'no_provider';
  constructor(
    readonly model: string,
    readonly skipped: readonly Skip[],
  ) {
    super(skipped.length ? `no provider can serve ${model} now (${summarize(skipped)})` : `no known provider serves ${model}`);
  }
}

/** `model: "auto"` found no model at or above the configured quality floor. */
export class NoQualifyingModelError extends RouteError {
  override name = 'NoQualifyingModelError';
  override readonly code = 'no_qualifying_model';
  constructor(
    readonly minQuality: number,
    readonly skipped: readonly Skip[] = [],
  ) {
    super(`model "auto": no offered model has a quality score of at least ${minQuality} (set auto.quality in satroute.json)`);
  }
}

/** A breaker was asked for a transition its state does not allow (a bug, never an outcome). */
export class IllegalTransitionError extends RouteError {
  override name = 'IllegalTransitionError';
  override readonly code = 'illegal_transition';
  constructor(
    readonly from: string,
    readonly transition: string,
  ) {
    super(`breaker: ${transition} is not allowed from ${from}`);
  }
}

/** The routing section of satroute.json is invalid. */
export class RouteConfigError extends RouteError {
  override name = 'RouteConfigError';
  override readonly code = 'route_config';
}

function summarize(skipped: readonly Skip[]): string {
  const counts = new Map<string, number>();
  for (const s of skipped) counts.set(s.reason, (counts.get(s.reason) ?? 0) + 1);
  return [...counts].map(([reason, n]) => `${n} ${reason}`).join(', ');
}
