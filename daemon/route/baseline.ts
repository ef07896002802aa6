// The baselines satroute's cost benchmark is measured against (issue 10, "Cost"):
//  (b) the existing Routstr client's rule, exactly as ROUTSTR.md section 6 states it;
//  (c) a random choice among live providers.
// Not used for routing; kept beside the router so the comparison stays honest as it changes.
import { normalizeMintUrl } from '@cashu/cashu-ts';
import { listPriceNmsat, NMSAT_PER_MSAT, type ModelPrice } from '../../protocol/pricing.ts';
import { promptParts } from '../../protocol/tokens.ts';
import type { Offer } from '../market-index.ts';

/** Per model/route cooldown: 10 s doubling to 10 min, reset on success. */
export const CLIENT_ROUTE_COOLDOWN_MS: readonly number[] = [10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000];
/** Whole-provider cooldown: 210 s after two failures within 210 s. */
export const CLIENT_PROVIDER_COOLDOWN_MS = 210_000;

const key = (providerId: string, model: string) => `${providerId}\u0000${model}`;

/**
 * The Routstr client's provider order for one request (the SDK routstrd runs on), a pure
 * function: among enabled providers not cooling down that serve the model (the market's
 * offers: by id or alias) and share a mint with the wallet, first the lowest
 * `prompt + completion` list price (request fee and max_cost ignored, ties by base URL); then
 * the failover order, by completion price alone, each provider once, no cap. Providers without
 * a positive review are disabled (fails closed) unless `requirePositiveReview` is false.
 */
export function routstrClientOrder(
  offers: readonly Offer[],
  walletMints: ReadonlySet<string>,
  o: { cooling?: (offer: Offer) => boolean; requirePositiveReview?: boolean } = {},
): Offer[] {
  const eligible = offers.filter(
    (x) => (!(o.requirePositiveReview ?? true) || x.provider.review === 'good') && !o.cooling?.(x) && x.mints.some((m) => walletMints.has(mintKey(m))),
  );
  if (eligible.length === 0) return [];
  const byUrl = (a: Offer, b: Offer) => (a.sortUrl < b.sortUrl ? -1 : a.sortUrl > b.sortUrl ? 1 : 0);
  const first = [...eligible].sort((a, b) => listPriceNmsat(a.price) - listPriceNmsat(b.price) || byUrl(a, b))[0];
  const rest = eligible.filter((x) => x !== first).sort((a, b) => a.price.completionNmsat - b.price.completionNmsat || byUrl(a, b));
  return [first, ...rest];
}

/** The client's rule with its cooldowns: per model/route 10 s doubling to 10 min, reset on success; a whole provider 210 s after two failures within 210 s. */
export class RoutstrClientRule {
  private readonly routeFailures = new Map<string, { count: number; until: number }>();
  private readonly providerFailures = new Map<string, { times: number[]; until: number }>();

  constructor(private readonly o: { requirePositiveReview?: boolean } = {}) {}

  /** Every provider the client would try for this request, in its order. */
  order(offers: readonly Offer[], walletMints: ReadonlySet<string>, model: string, now: number): Offer[] {
    const cooling = (x: Offer) => (this.routeFailures.get(key(x.provider.id, model))?.until ?? 0) > now || (this.providerFailures.get(x.provider.id)?.until ?? 0) > now;
    return routstrClientOrder(offers, walletMints, { cooling, requirePositiveReview: this.o.requirePositiveReview });
  }

  /** A failed attempt (400/422 and unknown-path 404 are not failures: do not report them). */
  failure(providerId: string, model: string, now: number): void {
    const k = key(providerId, model);
    const r = this.routeFailures.get(k) ?? { count: 0, until: 0 };
    r.until = now + CLIENT_ROUTE_COOLDOWN_MS[Math.min(r.count, CLIENT_ROUTE_COOLDOWN_MS.length - 1)];
    r.count += 1;
    this.routeFailures.set(k, r);
    const p = this.providerFailures.get(providerId) ?? { times: [], until: 0 };
    p.times = [...p.times.filter((t) => now - t < CLIENT_PROVIDER_COOLDOWN_MS), now];
    if (p.times.length >= 2) p.until = now + CLIENT_PROVIDER_COOLDOWN_MS;
    this.providerFailures.set(providerId, p);
  }

  success(providerId: string, model: string): void {
    this.routeFailures.delete(key(providerId, model));
  }
}

/**
 * The client's cost estimate for a request, msat (rounded up): (prompt x chars / 2.84 +
 * completion x max_tokens + request) x 1.05, capped at max_cost; routstrd sends max_tokens
 * 8192 when the caller gives none. `chars`: the prompt's text characters.
 */
export function routstrClientEstimateMsat(body: Record<string, unknown>, price: ModelPrice): number {
  const chars = promptParts(body).parts.reduce((n, p) => n + p.length, 0);
  const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : 8192;
  // the client's own float arithmetic, in nmsat
  const nmsat = ((chars / 2.84) * price.promptNmsat + maxTokens * price.completionNmsat + price.requestMsat * NMSAT_PER_MSAT) * 1.05;
  const msat = Math.ceil(nmsat / NMSAT_PER_MSAT);
  return price.maxCostMsat > 0 ? Math.min(msat, price.maxCostMsat) : msat;
}

/** The client's first deposit at a provider, sats: max(ceil(1.4 x estimate), 7); topped up when the balance falls under 1.4x. */
export function routstrClientDepositSat(estimateMsat: number): number {
  return Math.max(Math.ceil((1.4 * estimateMsat) / 1000), 7);
}

/** Baseline (c): the offers sharing a mint with the wallet, in a random order (injected random). */
export function randomLiveOrder(offers: readonly Offer[], walletMints: ReadonlySet<string>, random: () => number): Offer[] {
  const live = offers.filter((o) => o.mints.some((m) => walletMints.has(mintKey(m))));
  for (let i = live.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [live[i], live[j]] = [live[j], live[i]];
  }
  return live;
}

function mintKey(spelling: string): string {
  try {
    return normalizeMintUrl(spelling);
  } catch {
    return spelling;
  }
}
