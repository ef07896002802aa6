// Auto top-up: when the balance falls under a threshold, fund a configured amount through NWC,
// at most once per interval and within a daily cap. The decision is a pure function of the
// policy, the clock and the past auto top-ups (read from wallet_mint_quotes, so a restart
// cannot reset the interval or the cap).
import type { WalletContext } from './context.ts';

export interface TopupPolicy {
  thresholdSat: number;
  amountSat: number;
  /** Default 1 hour. */
  minIntervalMs?: number;
  /** Default 5 x amountSat per rolling 24 hours. */
  dailyCapSat?: number;
}

export interface TopupAttempt {
  atMs: number;
  amountSat: number;
}

export type TopupDecision =
  | { fund: true; amountSat: number }
  | { fund: false; reason: 'above_threshold' | 'too_soon' | 'daily_cap'; retryAtMs?: number };

const DAY_MS = 24 * 60 * 60 * 1000;

/** Decide whether to top up now. `recent` = auto top-ups of the last 24 h (any state but expired). */
export function decideTopup(policy: TopupPolicy, nowMs: number, balanceSat: number, recent: readonly TopupAttempt[]): TopupDecision {
  if (balanceSat >= policy.thresholdSat) return { fund: false, reason: 'above_threshold' };
  const minInterval = policy.minIntervalMs ?? 60 * 60 * 1000;
  const cap = policy.dailyCapSat ?? policy.amountSat * 5;
  const inDay = recent.filter((a) => nowMs - a.atMs < DAY_MS);
  const last = inDay.reduce((m, a) => Math.max(m, a.atMs), -Infinity);
  if (nowMs - last < minInterval) return { fund: false, reason: 'too_soon', retryAtMs: last + minInterval };
  const used = inDay.reduce((s, a) => s + a.amountSat, 0);
  const amountSat = Math.min(policy.amountSat, cap - used);
  if (amountSat <= 0) {
    const oldest = inDay.reduce((m, a) => Math.min(m, a.atMs), Infinity);
    return { fund: false, reason: 'daily_cap', retryAtMs: oldest + DAY_MS };
  }
  return { fund: true, amountSat };
}

export const AUTO_TOPUP_TAG = 'nwc-auto';

/** Auto top-ups in the last 24 hours (quotes created with pay_via = 'nwc-auto', unless they expired unpaid). */
export function recentTopups(ctx: WalletContext, nowMs: number): TopupAttempt[] {
  return (ctx.db.prepare(`SELECT created_at AS atMs, amount AS amountSat FROM wallet_mint_quotes
    WHERE pay_via = ? AND created_at > ? AND state <> 'expired' ORDER BY created_at`).all(AUTO_TOPUP_TAG, nowMs - DAY_MS) as TopupAttempt[]);
}
