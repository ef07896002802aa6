// What one successful probe changes: the provider's new model list compared with the old
// one, as rows to write (models, price history) and changes to announce. Pure: the caller
// says which models are "hot" (being looked up) and what the history last recorded.
import { samePrice, type ModelPrice, type ReserveTerms } from '../protocol/pricing.ts';
import type { ProviderModel } from '../protocol/provider-client.ts';
import type { PriceChange, PriceRecord, StoredModel } from './market-store.ts';

export interface ModelDiff {
  /** The provider's models after the probe. */
  next: Map<string, StoredModel>;
  /** Models that appeared or whose listing changed (to write). */
  upserts: StoredModel[];
  /** Models no longer listed. */
  removed: string[];
  /** Every price that appeared, changed or went away (for events). */
  changes: PriceChange[];
  /** Rows for the price history. */
  history: PriceRecord[];
}

export interface DiffContext {
  providerId: string;
  now: number;
  /** Whether changes of this model's price are worth a history row. */
  isHot(model: StoredModel): boolean;
  /** The newest history row of a model at this provider. */
  lastRecorded(modelId: string): { validFrom: number; price: ModelPrice | null } | undefined;
}

/** Compare a provider's old models with what it lists now. */
export function diffModels(old: ReadonlyMap<string, StoredModel>, listed: readonly ProviderModel[], ctx: DiffContext): ModelDiff {
  const { providerId, now } = ctx;
  const out: ModelDiff = { next: new Map(), upserts: [], removed: [], changes: [], history: [] };
  // First sight is always recorded. A change is recorded for a hot model, together with the
  // price it replaces when the history lacks it (the model may have turned hot since).
  const record = (before: StoredModel | undefined, modelId: string, price: ModelPrice | null) => {
    if (before && !ctx.isHot(before)) return;
    if (before) {
      const last = ctx.lastRecorded(modelId);
      if (!last || last.validFrom < before.priceSince || !samePrice(last.price, before.price)) {
        out.history.push({ providerId, modelId, validFrom: before.priceSince, price: before.price });
      }
    }
    out.history.push({ providerId, modelId, validFrom: now, price });
  };
  for (const m of listed) {
    const before = old.get(m.id);
    const priceChanged = !before || !samePrice(before.price, m.price);
    const model: StoredModel = {
      providerId,
      id: m.id,
      name: m.name,
      aliasIds: m.aliasIds,
      contextLength: m.contextLength,
      price: m.price,
      reserve: m.reserve,
      firstSeenAt: before?.firstSeenAt ?? now,
      priceSince: priceChanged ? now : before.priceSince,
    };
    out.next.set(m.id, model);
    if (priceChanged) {
      out.changes.push({ providerId, modelId: m.id, at: now, before: before?.price, price: m.price });
      record(before, m.id, m.price);
    }
    if (
      priceChanged ||
      !before ||
      before.name !== model.name ||
      before.contextLength !== model.contextLength ||
      before.aliasIds.join('\n') !== model.aliasIds.join('\n') ||
      !sameReserve(before.reserve, model.reserve)
    ) {
      out.upserts.push(model);
    }
  }
  for (const [id, before] of old) {
    if (out.next.has(id)) continue;
    out.removed.push(id);
    out.changes.push({ providerId, modelId: id, at: now, before: before.price, price: null, removed: true });
    record(before, id, null);
  }
  return out;
}

// The node's reservation inputs move with every BTC/USD refresh, sometimes below the integer
// price's resolution: any difference is written, so token sizing follows the node exactly.
function sameReserve(a: ReserveTerms | null, b: ReserveTerms | null): boolean {
  if (a === null || b === null) return a === b;
  return (
    a.promptSats === b.promptSats &&
    a.completionSats === b.completionSats &&
    a.maxCostSats === b.maxCostSats &&
    a.maxPromptCostSats === b.maxPromptCostSats &&
    a.maxCompletionCostSats === b.maxCompletionCostSats &&
    a.topContextLength === b.topContextLength &&
    a.topMaxCompletionTokens === b.topMaxCompletionTokens &&
    a.contextLength === b.contextLength
  );
}
