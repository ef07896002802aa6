// What the session manager (sessions.ts) is configured with, depends on and hands out: its
// options and their defaults, its dependencies, a request's target and its lease on a balance,
// and what it reports of the money held at providers.
import type { Logger } from '../../protocol/logger.ts';
import type { DB } from '../../db/sqlite.ts';
import type { SessionApi } from './session-api.ts';
import type { SessionPayments } from './session-refund.ts';
import type { InterruptedBooks } from './session-interrupted.ts';

export interface SessionOptions {
  /** Payment mode for streamed requests ('session' needs a provider that supports it). */
  streaming: 'session' | 'xcashu';
  /** Most sats held at one provider; null: `capWorstCases` x the largest worst case seen there. */
  providerCapSat: number | null;
  capWorstCases: number;
  /** Most sats held at all providers together. */
  globalCapSat: number;
  /** A session unused this long is refunded (ms). */
  idleRefundMs: number;
  /** How long a request waits for room under the caps before it pays by X-Cashu instead (ms). */
  waitMs: number;
  /** Oldest node version used: v0.4.3 debits a refund before minting it and refuses one while requests run. */
  minVersion: string;
}

export const SESSION_DEFAULTS: SessionOptions = {
  streaming: 'session', providerCapSat: null, capWorstCases: 4, globalCapSat: 2_000, idleRefundMs: 180_000, waitMs: 30_000, minVersion: '0.4.3',
};

export interface SessionDeps {
  db: DB;
  payments: SessionPayments;
  api?: SessionApi;
  clock?: () => number;
  /** Waits between refund tries; injected so tests never sleep. */
  sleep?: (ms: number) => Promise<void>;
  logger?: Logger;
  /** A provider took more than it reported: demote it (breaker/statistics) and count the flag. */
  onFlag?: (providerId: string, flag: string, detail: Record<string, unknown>) => void;
  /** The request books: on start, requests a kill cut on a session are charged what its balance lost (session-interrupted.ts). */
  books?: InterruptedBooks;
  options?: Partial<SessionOptions>;
}

/** Where a request goes (from the route plan). */
export interface SessionTarget {
  providerId: string;
  providerUrl: string;
  providerVersion: string | null;
  mint: string;
  tokenMint: string;
  /** msat the node will reserve for the request. */
  worstMsat: number;
}

/** One request's claim on a session's balance. */
export interface Lease {
  readonly sessionId: string;
  readonly apiKey: string;
  readonly reserveMsat: number;
  /** No other request ran on the session at any time during this one. */
  solo: boolean;
}

export interface ProviderExposure {
  providerId: string;
  providerUrl: string;
  heldSat: number;
  capSat: number;
  sessions: number;
}

/** What followBreakers needs of daemon/route/breaker.ts Breakers (an EventEmitter of BreakerChange). */
export interface BreakerEvents {
  on(event: 'change', listener: (c: { providerId: string; modelId: string | null; to: string }) => void): unknown;
  off(event: 'change', listener: (c: { providerId: string; modelId: string | null; to: string }) => void): unknown;
}
