// What the request lifecycle (lifecycle.ts) is built from: the books, the router, the wallet's
// payment path, the provider client, and its options.
import type { Logger } from '../../protocol/logger.ts';
import type { CallDeps, CallOutcome, CallRequest, CallTimeouts } from '../../protocol/provider-call.ts';
import type { DB } from '../../db/sqlite.ts';
import type { DaemonMetrics } from '../api/metrics.ts';
import type { Router } from '../route/index.ts';
import type { PaymentPath } from './attempt.ts';
import type { Budgets } from './budgets.ts';
import type { EventHub } from './events.ts';
import type { RequestLedger } from './ledger.ts';
import type { SessionManager } from './sessions.ts';
import type { TopUpCapOptions } from './topup-cap.ts';

/**
 * The request path's provider call timeouts, over protocol/provider-call.ts DEFAULT_CALL_TIMEOUTS:
 * a whole call (an answer that never ends included) gets 4 minutes, not 10 - the first byte's
 * 3 minutes (a node buffers a paid stream: the whole generation) plus a minute to stream it.
 */
export const REQUEST_TIMEOUT_DEFAULTS: Partial<CallTimeouts> = { totalMs: 240_000 };

export interface LifecycleOptions {
  /** Provider call timeouts (REQUEST_TIMEOUT_DEFAULTS, then protocol/provider-call.ts DEFAULT_CALL_TIMEOUTS). */
  timeouts?: Partial<CallTimeouts>;
  /** Top-ups per provider and window; `maxCount: 0` turns them off. */
  topUp?: Partial<TopUpCapOptions>;
  /** Attempts per request, 1-3 (default 3). */
  maxAttempts?: number;
}

export interface LifecycleDeps {
  db: DB;
  router: Pick<Router, 'plan' | 'report' | 'late' | 'release'>;
  ledger: RequestLedger;
  budgets: Budgets;
  payments: PaymentPath;
  /** Spendable sats per wallet mint (normalised URL). */
  balances(): ReadonlyMap<string, number>;
  /** The input fee of a mint's active sat keyset, ppk per proof (NUT-02); default none. */
  feePpk?(mint: string): number;
  call?: (req: CallRequest, deps?: CallDeps) => Promise<CallOutcome>;
  callDeps?: CallDeps;
  metrics?: DaemonMetrics;
  events?: Pick<EventHub, 'publish'>;
  logger?: Logger;
  /** Epoch ms (timestamps, budgets' days); monotonic ms for durations. */
  clock?: () => number;
  now?: () => number;
  options?: LifecycleOptions;
  /** Session mode (sessions.ts); without it every request pays by X-Cashu. */
  sessions?: SessionManager;
}
