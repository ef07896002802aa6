// The provider's public HTTP endpoints used for discovery: GET /v1/info and GET /v1/models
// (ROUTSTR.md section 2). Every call has a timeout and a body size limit; bodies are read
// without trusting Content-Length (nodes re-serialise bodies but may keep the upstream's)
// and parsed with zod. One malformed model is skipped, not the whole list.
import { z } from 'zod';
import { isOnionUrl, normalizeProviderUrl } from './discovery.ts';
import { nullLogger, type Logger } from './logger.ts';
import { normalizePrice, reserveTermsFrom, type ModelPrice, type ReserveTerms } from './pricing.ts';
import { socksFetch } from './socks.ts';

export type ProbeFailure = 'unreachable' | 'timeout' | 'http_status' | 'too_large' | 'invalid_response' | 'onion_without_proxy';

/** A discovery call to a provider failed; `reason` says how. */
export class ProbeError extends Error {
  override name = 'ProbeError';
  constructor(
    readonly reason: ProbeFailure,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

const optionalString = z.string().max(4096).optional().catch(undefined);

export const ProviderInfoSchema = z.object({
  name: optionalString,
  description: optionalString,
  version: optionalString,
  npub: optionalString,
  mints: z.array(z.string()).max(100).optional().catch(undefined),
  http_url: optionalString.nullable().catch(undefined),
  onion_url: optionalString.nullable().catch(undefined),
  child_key_cost_msats: z.number().optional().catch(undefined),
});

/** What /v1/info says, tolerantly parsed. */
export interface ProviderInfo {
  name?: string;
  description?: string;
  version?: string;
  npub?: string;
  /** Accepted mint URLs, spelled exactly as the node lists them. */
  mints: string[];
  httpUrl?: string;
  onionUrl?: string;
}

const ModelSchema = z.object({
  id: z.string().min(1).max(512),
  name: z.string().max(512).optional().catch(undefined),
  context_length: z.number().int().nonnegative().optional().catch(undefined),
  alias_ids: z.array(z.string().min(1).max(512)).max(100).nullable().optional().catch(undefined),
  enabled: z.boolean().optional().catch(undefined),
  sats_pricing: z.unknown().optional(),
  pricing: z.unknown().optional(),
  top_provider: z.unknown().optional(),
});

/** One model a provider serves, with its normalized price (null when it lists none we can use). */
export interface ProviderModel {
  id: string;
  name?: string;
  aliasIds: string[];
  contextLength?: number;
  price: ModelPrice | null;
  /** What the node's reservation check reads (its sats prices and `top_provider` limits); null without sats pricing. */
  reserve: ReserveTerms | null;
}

export interface ProviderClientOptions {
  /** fetch for clearnet URLs (injected in tests). */
  fetch?: typeof fetch;
  /** SOCKS5 proxy for .onion URLs; without one they are refused. */
  socksProxy?: string;
  /** fetch for .onion URLs; defaults to one through `socksProxy`. */
  onionFetch?: typeof fetch;
  timeoutMs?: number;
  maxInfoBytes?: number;
  maxModelsBytes?: number;
  /** USD per sat, to price models that list only USD `pricing`. */
  usdPerSat?: number;
  logger?: Logger;
}

export const DEFAULT_PROBE_TIMEOUT_MS = 10_000;

export class ProviderClient {
  private readonly fetchClear: typeof fetch;
  private readonly fetchOnion: typeof fetch | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: ProviderClientOptions = {}) {
    this.fetchClear = opts.fetch ?? globalThis.fetch;
    this.fetchOnion = opts.onionFetch ?? (opts.socksProxy ? socksFetch(opts.socksProxy) : undefined);
    this.log = opts.logger ?? nullLogger;
  }

  /** Whether this client can reach the URL at all (.onion needs a proxy). */
  canReach(baseUrl: string): boolean {
    return !isOnionUrl(baseUrl) || this.fetchOnion !== undefined;
  }

  async info(baseUrl: string, signal?: AbortSignal): Promise<ProviderInfo> {
    const body = await this.getJson(baseUrl, '/v1/info', this.opts.maxInfoBytes ?? 256 * 1024, signal);
    const r = ProviderInfoSchema.safeParse(body);
    if (!r.success) throw new ProbeError('invalid_response', `${baseUrl}/v1/info: not a provider info object`);
    const i = r.data;
    return {
      name: i.name,
      description: i.description,
      version: i.version,
      npub: i.npub,
      // exactly as listed: the node compares a token's mint with this list as exact strings
      mints: [...new Set((i.mints ?? []).filter((m) => normalizeProviderUrl(m) !== undefined))],
      httpUrl: i.http_url ?? undefined,
      onionUrl: i.onion_url ?? undefined,
    };
  }

  async models(baseUrl: string, signal?: AbortSignal): Promise<ProviderModel[]> {
    const body = await this.getJson(baseUrl, '/v1/models', this.opts.maxModelsBytes ?? 16 * 1024 * 1024, signal);
    const list = Array.isArray(body) ? body : (body as { data?: unknown } | null)?.data;
    if (!Array.isArray(list)) throw new ProbeError('invalid_response', `${baseUrl}/v1/models: no data array`);
    const out: ProviderModel[] = [];
    const seen = new Set<string>();
    let skipped = 0;
    for (const raw of list) {
      const m = ModelSchema.safeParse(raw);
      if (!m.success) {
        skipped++;
        continue;
      }
      if (m.data.enabled === false || seen.has(m.data.id)) continue;
      seen.add(m.data.id);
      let price: ModelPrice | null = null;
      try {
        price = normalizePrice(m.data, { usdPerSat: this.opts.usdPerSat });
      } catch {
        skipped++;
      }
      out.push({
        id: m.data.id,
        name: m.data.name,
        aliasIds: [...new Set((m.data.alias_ids ?? []).filter((a) => a !== m.data.id))],
        contextLength: m.data.context_length,
        price,
        reserve: price ? reserveTermsFrom(raw) : null,
      });
    }
    if (skipped) this.log.debug('provider models skipped', { provider: baseUrl, skipped });
    return out;
  }

  /** GET a JSON body; `signal` (e.g. the daemon stopping) aborts it like the timeout does. */
  private async getJson(baseUrl: string, path: string, maxBytes: number, signal?: AbortSignal): Promise<unknown> {
    const url = `${baseUrl.replace(/\/+$/, '')}${path}`;
    const onion = isOnionUrl(baseUrl);
    const f = onion ? this.fetchOnion : this.fetchClear;
    if (!f) throw new ProbeError('onion_without_proxy', `${baseUrl} is a .onion address and no SOCKS proxy is configured`);
    const timeoutMs = this.opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal?.aborted) throw new ProbeError('unreachable', `${url}: canceled`);
      let res: Response;
      try {
        res = await f(url, { headers: { accept: 'application/json' }, signal: controller.signal, redirect: 'error' });
      } catch (err) {
        if (signal?.aborted) throw new ProbeError('unreachable', `${url}: canceled`);
        if (controller.signal.aborted) throw new ProbeError('timeout', `${url}: no answer within ${timeoutMs} ms`);
        throw new ProbeError('unreachable', `${url}: ${describe(err)}`);
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        throw new ProbeError('http_status', `${url}: HTTP ${res.status}`, res.status);
      }
      const text = await readLimited(res, maxBytes, url, controller.signal, timeoutMs);
      try {
        return JSON.parse(text);
      } catch {
        throw new ProbeError('invalid_response', `${url}: body is not JSON`);
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

async function readLimited(res: Response, maxBytes: number, url: string, signal: AbortSignal, timeoutMs: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new ProbeError('too_large', `${url}: body over ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof ProbeError) throw err;
    if (signal.aborted) throw new ProbeError('timeout', `${url}: body not complete within ${timeoutMs} ms`);
    throw new ProbeError('unreachable', `${url}: ${describe(err)}`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describe(err: unknown): string {
  try {
    const e = err as { message?: unknown; cause?: { code?: unknown; message?: unknown } };
    const text = e?.cause?.code ?? e?.cause?.message ?? e?.message ?? err;
    return typeof text === 'string' ? text : String(text);
  } catch {
    return 'unknown error'; // something thrown that cannot even be printed
  }
}
