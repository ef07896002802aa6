// Probing, for the market: which providers are due, asking each over HTTP (at most
// `probe.concurrency` at once) which of its URLs answers with its models, prices and mints, and
// what follows - reachable with its offers diffed in, or unreachable with a growing backoff.
// The market owns the providers; this file changes them only through its host.
import { isOnionUrl } from '../protocol/discovery.ts';
import type { Logger } from '../protocol/logger.ts';
import { ProbeError, type ProviderClient, type ProviderInfo, type ProviderModel } from '../protocol/provider-client.ts';
import type { MarketIndex, MarketProvider } from './market-index.ts';
import { urlClaim } from './market-claims.ts';
import { diffModels } from './market-diff.ts';
import { Limiter } from './limiter.ts';
import type { MarketStore, PriceChange, StoredModel } from './market-store.ts';

/** Delays before re-probing a provider after its n-th consecutive failure (ms), +/-20% jitter. */
export const PROBE_BACKOFF_MS: readonly number[] = [15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000];
export const DEFAULT_PROBE_CONCURRENCY = 8;
export const DEFAULT_REFRESH_INTERVAL_MS = 5 * 60_000;
/** Providers only reachable over .onion, with no proxy configured: looked at again this rarely. */
const UNREACHABLE_ONION_RETRY_MS = 60 * 60_000;
/** Announcements whose every URL belongs to another provider (market-claims.ts): looked at again this rarely. */
const IMPOSTOR_RETRY_MS = 60 * 60_000;

/** What the prober needs of the market that owns the providers. */
export interface ProbeHost {
  index: MarketIndex;
  store: MarketStore;
  client: ProviderClient;
  clock: () => number;
  random: () => number;
  log: Logger;
  /** Aborted when the market stops: probes in flight are cancelled. */
  signal: AbortSignal;
  refreshMs: number;
  concurrency: number;
  isStopped(): boolean;
  isExcluded(p: MarketProvider): boolean;
  /** Whether someone looked this model up recently (its price changes are recorded). */
  isHot(m: StoredModel, now: number): boolean;
  /** Patch a provider, persist it, and tell listeners if its status or review changed. */
  update(p: MarketProvider, patch: Partial<MarketProvider>): void;
  /** The provider's offers changed (the catalogue is stale). */
  offersChanged(): void;
  providerChanged(p: MarketProvider): void;
  pricesChanged(providerId: string, changes: PriceChange[]): void;
}

export class MarketProber {
  private readonly limiter: Limiter;
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Probes started since construction (for status and tests). */
  probes = 0;

  constructor(private readonly h: ProbeHost) {
    this.limiter = new Limiter(h.concurrency);
  }

  /** Probe every provider that is due at `now`, at most `probe.concurrency` at a time; resolves when they are done. */
  async probeDue(now: number): Promise<void> {
    const due = [...this.h.index.providers.values()].filter((p) => p.nextProbeAt <= now && !this.inFlight.has(p.id) && !this.h.isExcluded(p));
    due.sort((a, b) => a.nextProbeAt - b.nextProbeAt);
    await Promise.allSettled(due.map((p) => this.probe(p.id)));
  }

  /** Probe one provider now (queued behind the concurrency limit). */
  probe(providerId: string): Promise<void> {
    const running = this.inFlight.get(providerId);
    if (running) return running;
    const run = this.limiter
      .run(() => this.probeNow(providerId))
      .catch((err) => this.h.log.error('probe failed unexpectedly', { provider: providerId, err }))
      .finally(() => this.inFlight.delete(providerId));
    this.inFlight.set(providerId, run);
    return run;
  }

  /** The most probes that ran at once so far. */
  get peakConcurrency(): number {
    return this.limiter.peak;
  }

  /** Resolves when every probe in flight has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight.values()]);
  }

  private async probeNow(providerId: string): Promise<void> {
    const { index, client } = this.h;
    const p = index.get(providerId);
    if (!p || this.h.isStopped()) return;
    this.probes++;
    const startedAt = this.h.clock();
    const candidates = orderUrls(p.urls, p.url).filter((u) => client.canReach(u));
    if (candidates.length === 0) {
      this.failed(p, startedAt, 'only .onion URLs and no SOCKS proxy configured', UNREACHABLE_ONION_RETRY_MS);
      return;
    }
    let lastError = '';
    let refuted = 0;
    for (const url of candidates) {
      try {
        const signal = this.h.signal;
        const [models, info] = await Promise.all([client.models(url, signal), client.info(url, signal).catch((err: unknown) => err as Error)]);
        if (index.get(providerId) !== p || this.h.isStopped()) return; // removed or stopped meanwhile
        const known = info instanceof Error ? undefined : info;
        if (urlClaim(p.pubkey, known) === 'refuted') {
          refuted++;
          lastError = `${url} belongs to another provider (its /v1/info names ${known?.npub?.slice(0, 20)}...)`;
          this.h.log.info('announced URL belongs to another provider', { provider: p.id, url });
          continue;
        }
        this.succeeded(p, url, models, known);
        return;
      } catch (err) {
        lastError = err instanceof ProbeError ? err.message : String((err as Error)?.message ?? err);
      }
    }
    if (index.get(providerId) !== p || this.h.isStopped()) return;
    this.failed(p, startedAt, lastError, refuted === candidates.length ? IMPOSTOR_RETRY_MS : undefined);
  }

  private succeeded(p: MarketProvider, url: string, listed: ProviderModel[], info: ProviderInfo | undefined): void {
    const { store, log } = this.h;
    const now = this.h.clock();
    const { next, upserts, removed, changes, history } = diffModels(p.models, listed, {
      providerId: p.id,
      now,
      isHot: (m) => this.h.isHot(m, now),
      lastRecorded: (modelId) => store.lastRecorded(p.id, modelId),
    });
    const statusChanged = p.status !== 'reachable';
    const infoMints = info?.mints.length ? info.mints : p.infoMints;
    const offersChanged = statusChanged || upserts.length > 0 || removed.length > 0 || url !== p.url || infoMints.join(' ') !== p.infoMints.join(' ');
    Object.assign(p, {
      url,
      models: next,
      infoMints,
      name: p.name ?? info?.name,
      version: p.version ?? info?.version,
      status: 'reachable',
      statusSince: statusChanged ? now : p.statusSince,
      lastSeenAt: now,
      lastProbeAt: now,
      nextProbeAt: now + this.jitter(this.h.refreshMs, 0.1),
      failures: 0,
      lastError: undefined,
    });
    store.saveProbe(p, upserts, removed, history);
    if (offersChanged) this.h.index.reindex(p.id); // a refresh that changed nothing leaves the index alone
    this.h.offersChanged();
    if (statusChanged) log.info('provider reachable', { provider: p.id, url, models: next.size });
    const real = changes.filter((c) => c.before !== undefined);
    if (real.length) log.info('provider prices changed', { provider: p.id, models: real.length });
    if (statusChanged) this.h.providerChanged(p);
    if (changes.length) this.h.pricesChanged(p.id, changes);
  }

  private failed(p: MarketProvider, at: number, error: string, fixedDelayMs?: number): void {
    const failures = p.failures + 1;
    const delay = fixedDelayMs ?? this.jitter(PROBE_BACKOFF_MS[Math.min(failures - 1, PROBE_BACKOFF_MS.length - 1)], 0.2);
    const statusChanged = p.status !== 'unreachable';
    this.h.update(p, {
      status: 'unreachable',
      statusSince: statusChanged ? at : p.statusSince,
      lastProbeAt: at,
      nextProbeAt: at + delay,
      failures,
      lastError: error.slice(0, 300),
    });
    if (statusChanged) this.h.log.info('provider unreachable', { provider: p.id, error: p.lastError, retryInMs: delay });
    // (the WebSocket `providers` topic tells clients, as it does when a provider becomes reachable)
    if (statusChanged) this.h.providerChanged(p);
  }

  private jitter(ms: number, spread: number): number {
    return Math.round(ms * (1 - spread + 2 * spread * this.h.random()));
  }
}

/** Try the URL that answered last, then clearnet URLs, then .onion ones. */
export function orderUrls(urls: readonly string[], last: string | undefined): string[] {
  const rest = urls.filter((u) => u !== last);
  return [...(last && urls.includes(last) ? [last] : []), ...rest.filter((u) => !isOnionUrl(u)), ...rest.filter(isOnionUrl)];
}
