// The router's shortlist: the best few candidates of one request in plan order, kept while
// every offer of the model is scanned, and the lowest list prices that bound the scan.
import type { Offer } from '../market-index.ts';

export interface Ranked {
  offer: Offer;
  /** The provider's spelling of the mint chosen. */
  tokenMint: string;
  reserveMsat: number;
  promptTokens: number;
  completionTokens: number;
  score: number;
  /** Half-open: this attempt would be its breaker's one probe. */
  probe: boolean;
  /** Never observed and already on trial in another plan: ranked after every other candidate. */
  busy: boolean;
}

// The market's lists are immutable snapshots, replaced on change: computed once per list.
const floors = new WeakMap<readonly Offer[], ListFloor>();

export interface ListFloor {
  /** The lowest prompt price, nmsat per token (0 for an empty list). */
  a: number;
  /** The lowest completion price, nmsat per token (0 for an empty list). */
  b: number;
  /** The model ids the list holds. */
  models: string[];
}

/** The lowest prompt and completion prices in a list of offers, and its model ids. */
export function listFloor(offers: readonly Offer[]): ListFloor {
  let f = floors.get(offers);
  if (!f) {
    let a = Infinity;
    let b = Infinity;
    const models = new Set<string>();
    for (const o of offers) {
      if (o.price.promptNmsat < a) a = o.price.promptNmsat;
      if (o.price.completionNmsat < b) b = o.price.completionNmsat;
      models.add(o.model.id);
    }
    floors.set(offers, (f = { a: a === Infinity ? 0 : a, b: b === Infinity ? 0 : b, models: [...models] }));
  }
  return f;
}

/**
 * Keep the `limit` best, in order: not busy first, then the lowest score; on equal scores the
 * earlier offer (cheaper list price) stays first.
 */
export function insertTop(top: Ranked[], r: Ranked, limit: number): void {
  if (top.length === limit && !ahead(r.busy, r.score, top[limit - 1])) return;
  let i = top.length;
  while (i > 0 && ahead(r.busy, r.score, top[i - 1])) i--;
  top.splice(i, 0, r);
  if (top.length > limit) top.pop();
}

/** Strictly ahead of `than` in the plan. */
export function ahead(busy: boolean, score: number, than: Ranked): boolean {
  return busy === than.busy ? score < than.score : !busy;
}
