// Types and defaults shared by the simulated Routstr provider's modules.
import type { ProviderState } from './balance-book.ts';

/** One model a simulated provider serves. Prices are sats per token, as in `sats_pricing`. */
export interface ModelSpec {
  id: string;
  name?: string;
  aliasIds?: string[];
  promptSatsPerToken: number;
  completionSatsPerToken: number;
  /** `sats_pricing.request`: listed (0 or absent lists routstr's floor, 0.001 sat) but never billed, as in routstr-core. */
  requestSats?: number;
  /** `sats_pricing.max_cost`; default (contextLength - maxCompletionTokens) x prompt + maxCompletionTokens x completion. */
  maxCostSats?: number;
  /** Default 8192. */
  contextLength?: number;
  /** `top_provider.max_completion_tokens`; default 1024. */
  maxCompletionTokens?: number;
  kind?: 'chat' | 'embedding';
}

/** The node's upstream rate-limits it: once the window is full, paid requests are redeemed, then answered 429 with a full refund. */
export interface RateLimit {
  /** The upstream's Retry-After (seconds); the node does not pass it on (its error response is built afresh). */
  retryAfterSec?: number;
  /** Paid requests admitted per window before 429s start; absent: every paid request gets 429. */
  maxRequests?: number;
  /** Window length for maxRequests, measured with the injected clock; default 60 000 ms. */
  windowMs?: number;
}

/** Fault and behaviour knobs; every field may be changed while the provider runs. */
export interface ProviderKnobs {
  /** Delay before any request is handled (ms). */
  latencyMs: number;
  /** Paid requests: upstream think time after the token is redeemed, before the first byte (ms). */
  ttfbMs: number;
  /** 0..1: share of paid requests whose upstream fails after redemption (full refund_token). */
  failureRate: number;
  /** HTTP status of those upstream failures (routstr passes the upstream's through); default 502. */
  failureStatus: number;
  /** Paid requests hang for ever after redemption (the upstream never answers). */
  timeout: boolean;
  /** The upstream's rate limit: 429 after redemption, full refund, no Retry-After (routstr-core has no limiter of its own). */
  rateLimit: RateLimit | null;
  /** Charges tokens x price x factor (1 = honest). */
  overchargeFactor: number;
  /** Which cost an overcharging provider reports: the inflated one it charged, or the honest one. */
  overchargeReports: 'inflated' | 'honest';
  /** Responses carry no usage: non-streaming refunds everything, streaming keeps everything. */
  noUsage: boolean;
  /** 'garbage': the X-Cashu change header is not a token; 'spent': a token the provider already spent. */
  invalidChange: 'garbage' | 'spent' | null;
  /** Destroy the socket after this many SSE data lines (streaming only). */
  midStreamDrop: number | null;
  /** HTTP port closed (connection refused) while still announced on Nostr. */
  dead: boolean;
  /** 413 instead of 402 for too small a token, whatever the version (nodes before v0.4.2 do it anyway). */
  use413: boolean;
  /** Cost reported only in a top-level `cost` or in `metadata.routstr.cost` (older routstr). */
  legacyCostField: 'top-level' | 'metadata' | null;
  /** The node's mints (its primary first), compared with a token's mint as exact strings; default the listed mints. */
  acceptedMints: string[];
  /** Take the token, then answer 500 internal_error with no refund. */
  internalError500: boolean;
  /** Force the completion token count (still bounded by max_tokens); null: derived from the reply. */
  completionTokens: number | null;

  // ---- Where a real routstr-core node is not kind (issue 8) ----
  /**
   * A token whose mint is not, as an exact string, one of acceptedMints: 'swap' melts it at its
   * mint over Lightning and mints at the node's primary (the payer bears the fees and the wait;
   * change comes from the primary), 'refuse' answers 422 cashu_foreign_mint_swap_failed.
   */
  foreignMint: 'swap' | 'refuse';
  /** The node's upstream answers this status after redemption (full refund, status passed through). */
  upstreamError: UpstreamError | null;
  /** The upstream reports a USD cost (as OpenRouter does): charged ceil(usd x fee / usd_per_sat x 1000) msat. */
  usdCost: boolean;
  /** With usdCost: how far the node's BTC/USD rate moved since its sats prices were listed (0.02: about 2 % more than tokens x listed price; real drift stays within +-3 %). */
  usdDrift: number;
  /** The listed prices change just before a paid request, which is then checked and charged at the new price; applied once. */
  priceChange: PriceChange | null;
  /** ms (on the provider clock) from redemption until the node has recorded the token (the request waits); a refund asked meanwhile answers 404. */
  refundRecordDelayMs: number;
  /** Change and refunds never collected through the refund endpoint are swept by the node after this long (then 410). */
  refundSweepAgeMs: number;
  /** Non-streaming answers keep the upstream's Content-Length: 'smaller' than the body (no body arrives) or 'larger' (the body, then the connection closes early). */
  staleContentLength: 'smaller' | 'larger' | null;

  // --- The balance (API-key) mode (provider/balance-*.ts) ---
  /** Fake upstream: time to make each SSE event (ms); the balance mode forwards each at once, a non-streamed answer waits for all. */
  chunkDelayMs: number;
  /** The provider is gone with its balances: port closed for good, keys forgotten (setDead(false) cannot undo it). */
  vanished: boolean;
  /** Uncollected API-key refunds older than this are swept back by the node, then 410 (routstr: 7 days). */
  balanceRefundSweepMs: number;
  /** The refund endpoint releases reservations older than this (routstr STALE_RESERVATION_TIMEOUT_SECONDS: 300 s). */
  staleReservationMs: number;
  /** Gap between the refund endpoint reading a balance and debiting it (its DB round trip); a change meanwhile is a 409. */
  refundDebitDelayMs: number;

  // --- Hostile providers (issue 13; provider/hostile.ts): no honest routstr-core node does these ---
  /** Reported usage = real token counts x this (rounded down) while the charge is for all of them; 1 = honest. */
  usageReportFactor: number;
  /** Change worth this much more (in the paid token's unit) than the node owes, paid from its own pool (as far as the pool holds it). */
  changeSurplus: number;
  /** Change paid from this mint (URL) instead of the paid one, from the node's pool there (when it holds enough). */
  changeMint: string | null;
  /** Paid 200 answers never end: after the headers (change included), a piece of the answer every this many ms, for ever. */
  endlessMs: number | null;
  /** Paid 200 answers (JSON or SSE) padded to this many bytes. */
  hugeBodyBytes: number | null;
  /** Paid 200 answers valid JSON of the wrong shape. */
  wrongShape: WrongShape | null;
  /** The token counts (and the cost the node reports) in usage replaced by values no count can be. */
  badUsage: BadUsage | null;
  /** Announce this URL (another provider's) under this provider's own key, instead of its own URLs. */
  impersonate: string | null;
}

/** no-choices: `choices` left out; choices-object: `choices` an object; usage-array: `usage` an array; array: the answer wrapped in an array. */
export type WrongShape = 'no-choices' | 'choices-object' | 'usage-array' | 'array';

/** negative, huge (2^64), nan (a bare NaN token, as Python's json.dumps writes float('nan')), infinity (bare Infinity), nan-string ("NaN"), string ("12"). */
export type BadUsage = 'negative' | 'huge' | 'nan' | 'infinity' | 'nan-string' | 'string';

/** An upstream failure the node passes through after taking the token. */
export interface UpstreamError {
  /** 402/413 out of credit, 404 unknown model path, 429, 5xx ... */
  status: number;
  /** Only requests for these model ids (as requested); absent: all. */
  models?: string[];
  /** Only for this long after the first request it answers, then the knob clears itself; absent: for ever. */
  forMs?: number;
}

export interface PriceChange {
  /** Multiplies the prompt and completion prices (and max cost) of the requested model. */
  factor: number;
  /** Applied before the Nth paid request from now (default 1). */
  afterRequests?: number;
}

export const defaultKnobs = (mints: string[]): ProviderKnobs => ({
  latencyMs: 0,
  ttfbMs: 0,
  failureRate: 0,
  failureStatus: 502,
  timeout: false,
  rateLimit: null,
  overchargeFactor: 1,
  overchargeReports: 'inflated',
  noUsage: false,
  invalidChange: null,
  midStreamDrop: null,
  dead: false,
  use413: false,
  legacyCostField: null,
  acceptedMints: [...mints],
  internalError500: false,
  completionTokens: null,

  foreignMint: 'swap',
  upstreamError: null,
  usdCost: false,
  usdDrift: 0,
  priceChange: null,
  refundRecordDelayMs: 0,
  refundSweepAgeMs: REFUND_SWEEP_TTL_MS,
  staleContentLength: null,

  chunkDelayMs: 0,
  vanished: false,
  balanceRefundSweepMs: 7 * 24 * 3_600_000,
  staleReservationMs: 300_000,
  refundDebitDelayMs: 0,

  usageReportFactor: 1,
  changeSurplus: 0,
  changeMint: null,
  endlessMs: null,
  hugeBodyBytes: null,
  wrongShape: null,
  badUsage: null,
  impersonate: null,
});

/** routstr-core's refund_sweep_ttl_seconds default: 7 days. */
export const REFUND_SWEEP_TTL_MS = 604_800_000;

export interface ProviderOptions {
  name: string;
  relays: string[];
  mints: string[];
  models: ModelSpec[];
  knobs?: Partial<ProviderKnobs>;
  /** Nostr secret key; default random. */
  secretKey?: Uint8Array;
  /** `d` tag; default the first 12 hex chars of the pubkey, as routstr does. */
  providerId?: string;
  about?: string;
  /** Random source for failureRate; default Math.random. */
  random?: () => number;
  /** Milliseconds since the epoch; default Date.now. */
  clock?: () => number;
  /** Node version announced and in /v1/info, and the behaviour of that version (see version.ts); default '0.4.5'. */
  version?: string;
  /** USD per sat for the `pricing` (USD) fields; default 0.001. */
  usdPerSat?: number;
  /** Extra `u` tags (e.g. an onion URL) besides the HTTP URL. */
  extraUrls?: string[];
  /** Port on 127.0.0.1; default 0. */
  port?: number;
  /** Skip the kind-38421 publish at start. */
  noAnnounce?: boolean;
  /** Unexpected errors after redemption (answered 500 with no refund) are reported here; default silent. */
  onError?: (err: unknown) => void;

  // --- The balance (API-key) mode ---
  /** Balances, API-key refunds and the proof pool; pass the same object again to restart a provider on its state. */
  state?: ProviderState;
  /** The fake upstream's waits in the balance mode (ttfb, chunk delays) and the refund's read-to-debit gap; default a timer. */
  delay?: (ms: number) => Promise<void>;
}

export interface ProviderStats {
  /** Paid requests received (any outcome). */
  requests: number;
  /** Paid requests answered 200. */
  succeeded: number;
  /** Tokens redeemed at the mint. */
  redeemed: number;
  /** Value kept by the provider, in msat (sat tokens count x1000). */
  earnedMsat: number;
  /** Kept, in whole sats (msat earnings rounded down). */
  earnedSat: number;
  /** Change and refunds issued, in msat. */
  refundedMsat: number;
  /** Responses by status code. */
  byStatus: Record<number, number>;
  /** The proof pool per mint and unit. */
  pool: { mint: string; unit: string; amount: number; proofs: number }[];
}
