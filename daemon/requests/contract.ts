// What HTTP and WebSocket hand to the request lifecycle, and what it hands back. Both APIs
// enter through `RequestHandler.handle` (daemon/requests/lifecycle.ts implements it); nothing
// below the lifecycle calls back up except through the `ResponseSink` it was given.
//
// Order of sink calls for one request:
//   accepted -> (response | chunk* -> done) | error
// `error` may come instead of `accepted` (refused at admission, or every attempt failed before
// the first byte), or after `accepted`/chunks (a stream broke after its first byte reached the
// client: never a silent switch to another provider, the stream ends with this error).
import type { ApiError } from '../api/errors.ts';
import type { ClientKey } from '../api/auth.ts';
import type { PaidEndpoint, RequestBody } from '../../protocol/openai.ts';
import type { Policy } from '../route/estimate.ts';

export type PaymentModeChoice = 'xcashu' | 'session';

/** One client request, authenticated and parsed at the edge. */
export interface ApiRequest {
  client: ClientKey;
  endpoint: PaidEndpoint;
  body: RequestBody;
  /** The client asked for a stream (`stream: true`). */
  stream: boolean;
  /** `x-satroute-max-sats` / WS `max_sats`. */
  maxSats?: number;
  /** `x-satroute-policy` / WS `policy`. */
  policy?: Policy;
  /** `x-satroute-provider` / WS `provider`: pin one provider (id, URL or name). */
  provider?: string;
  /** `x-satroute-explain: 1`: keep every skipped candidate with its reason. */
  explain?: boolean;
  /** `x-satroute-payment` / WS `payment`: override the payment mode. */
  payment?: PaymentModeChoice;
  /** Aborted when the client goes away or cancels: the upstream call stops, what was charged is settled. */
  signal: AbortSignal;
  /** When the request reached the daemon (ms, the daemon's clock): for x-satroute-overhead-ms. */
  receivedAt: number;
}

/** Sent once a provider answered and its answer is about to reach the client. */
export interface Accepted {
  requestId: string;
  provider: string;
  providerUrl: string;
  model: string;
  reservedSats: number;
  payment: PaymentModeChoice;
  /** Attempts that failed before this one (failover happened). */
  failedAttempts: number;
  /** Skipped candidates, only when `explain` was asked. */
  explain?: { skipped: { provider: string; reason: string }[]; tried: { provider: string; outcome: string }[] };
}

/** The money of one finished request (DESIGN.md: the WS `done` cost object). */
export interface DoneCost {
  sent_sats: number;
  change_sats: number;
  charged_msat: number;
  expected_msat: number | null;
  reported_msat: number | null;
}

export interface Done {
  requestId: string;
  provider: string;
  model: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  cost: DoneCost;
  flags: string[];
  /** ms the daemon added on top of the provider's own time. */
  overheadMs: number;
}

/** Where the lifecycle writes the answer; HTTP and WS each implement one. */
export interface ResponseSink {
  accepted(a: Accepted): void;
  /** A non-streaming answer (the provider's JSON body, model/ids as the provider sent them). */
  response(body: unknown, done: Done): void | Promise<void>;
  /**
   * One streamed event's JSON (an OpenAI chunk, or a Responses/Messages event). A returned
   * promise is awaited before the next one (backpressure: a slow client slows the upstream read).
   */
  chunk(data: unknown, event?: string): void | Promise<void>;
  /** The stream ended normally; the sink writes the final `satroute` chunk and `[DONE]`. */
  done(done: Done): void | Promise<void>;
  error(err: ApiError, requestId?: string): void | Promise<void>;
}

export interface RequestHandler {
  handle(req: ApiRequest, sink: ResponseSink): Promise<void>;
}

/** One event per settled request (and again when a late outcome changes it): the WS `payments` topic. */
export interface PaymentEvent {
  topic: 'payments';
  request_id: string;
  time: string;
  client: string;
  endpoint: string;
  model: string;
  provider: string | null;
  status: string;
  payment: PaymentModeChoice;
  usage: Done['usage'];
  cost: DoneCost;
  flags: string[];
  attempts: number;
  /** A later change to an already settled request (e.g. change found invalid after the swap). */
  late: boolean;
}

/** A provider's breaker, reachability or avoidance changed: the WS `providers` topic. */
export interface ProviderEvent {
  topic: 'providers';
  time: string;
  provider: string;
  url: string | null;
  /** What changed. */
  kind: 'breaker' | 'reachability' | 'avoidance';
  /** The new state, e.g. 'open', 'half_open', 'closed', 'reachable', 'unreachable', 'avoided'. */
  state: string;
  /** The model for a model-scope breaker; null for the whole provider. */
  model: string | null;
  detail?: string;
}

export type DaemonEvent = PaymentEvent | ProviderEvent;

/** Where the APIs subscribe to live events; the daemon composes it from the lifecycle, breakers, market and stats. */
export interface DaemonEvents {
  subscribe(listener: (e: DaemonEvent) => void): () => void;
}
