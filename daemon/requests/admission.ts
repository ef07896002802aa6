// Admission (DESIGN.md step 1-2): the plan for one request, what a refusal means to the client,
// the refused request's row for the audit, and - run inside the first token's transaction - the
// budget reservation at the plan's worst case with the request row.
import type { Logger } from '../../protocol/logger.ts';
import { msatToSatFloor, satToMsat } from '../../protocol/units.ts';
import type { DB } from '../../db/sqlite.ts';
import { BudgetExceededError, NoProviderError, toApiError } from '../api/errors.ts';
import { NoProviderError as RouteNoProvider, NoQualifyingModelError, type RoutePlan, type Router, type Skip } from '../route/index.ts';
import type { BudgetLimits, Budgets } from './budgets.ts';
import type { ApiRequest } from './contract.ts';
import type { RequestLedger } from './ledger.ts';

/** Proofs per token the fee estimate allows for (a token is a handful of powers of two). */
const FEE_PROOFS = 8;

export interface AdmissionDeps {
  db: DB;
  router: Pick<Router, 'plan' | 'release'>;
  ledger: RequestLedger;
  budgets: Budgets;
  balances(): ReadonlyMap<string, number>;
  feePpk?(mint: string): number;
  clock: () => number;
  logger: Logger;
  maxAttempts: number;
}

/** What admission decided for one request. */
export interface Admitted {
  requestId: string;
  req: ApiRequest;
  model: string;
  plan: RoutePlan;
  /** The plan's worst case: its largest token plus the mint's input fee on it. */
  reservedMsat: number;
  /** How the first attempt pays (the audit's `payment` column); default xcashu. */
  payment?: 'xcashu' | 'session';
}

export class Admission {
  constructor(private readonly d: AdmissionDeps) {}

  /** The plan within the caller's cap and what is left of its budget; throws the route's NoProviderError. */
  plan(req: ApiRequest, model: string, maxSats: number | undefined, limited = true): RoutePlan {
    return this.d.router.plan({
      model, body: req.body as Record<string, unknown>, endpoint: req.endpoint, balances: this.d.balances(),
      maxSats: limited ? maxSats : undefined, budgetSats: limited ? this.budgetLeftSats(req.client) : undefined,
      policy: req.policy, provider: req.provider, feeSat: (mint) => this.feeSat(mint), explain: req.explain, maxAttempts: this.d.maxAttempts,
    });
  }

  worstCaseMsat(plan: RoutePlan): number {
    return Math.max(...plan.attempts.map((a) => (a.tokenSat + this.feeSat(a.mint)) * 1000));
  }

  /**
   * Admission's write, inside the first token's transaction (one commit with the proofs going
   * pending): the budget reservation and the request row. A budget that does not fit throws
   * BudgetExceededError, and nothing is taken.
   */
  open(a: Admitted): void {
    const { req, plan } = a;
    this.d.budgets.reserve(a.requestId, req.client, a.reservedMsat);
    this.d.ledger.open({
      id: a.requestId, client: req.client.name, endpoint: req.endpoint, modelRequested: a.model, stream: req.stream, payment: a.payment ?? 'xcashu',
      reservedMsat: a.reservedMsat, priceSnapshot: plan.attempts[0].price, skipped: plan.skipped.map((s) => ({ provider: s.providerId, reason: s.reason })),
      time: this.d.clock(),
    });
  }

  /** What a refusal at planning means to the client: the budget (with how much was needed), or no provider with the reasons. */
  refusal(err: unknown, req: ApiRequest, model: string, maxSats: number | undefined): Error {
    if (!(err instanceof RouteNoProvider) && !(err instanceof NoQualifyingModelError)) return err as Error;
    const skipped: readonly Skip[] = err.skipped;
    const limits = skipped.filter((s) => s.reason === 'over_budget' || s.reason === 'over_max_sats');
    if (skipped.length > 0 && limits.length === skipped.length) {
      try {
        const unlimited = this.plan(req, model, undefined, false);
        this.d.router.release(unlimited);
        const neededMsat = Math.min(...unlimited.attempts.map((a) => (a.tokenSat + this.feeSat(a.mint)) * 1000));
        const perRequest = maxSats !== undefined && neededMsat > maxSats * 1000;
        return new BudgetExceededError(perRequest ? 'per_request' : 'daily', neededMsat, perRequest ? maxSats! * 1000 : (this.budgetLeftSats(req.client) ?? 0) * 1000);
      } catch {
        // fall through to no_provider
      }
    }
    const reasons = [...new Set(skipped.map((s) => `${s.name}: ${s.reason} (${s.detail})`))].slice(0, 8).join('; ');
    const retryable = skipped.some((s) => s.reason === 'breaker_open' || s.reason === 'probe_in_flight' || s.reason === 'rate_limited' || s.reason === 'insufficient_balance');
    return new NoProviderError(reasons ? `${err.message}: ${reasons}` : err.message, { retryable });
  }

  /** A request refused before any token was taken: its row for the audit (no reservation, nothing paid). */
  recordRefused(requestId: string, req: ApiRequest, model: string, cause: unknown, error: Error): void {
    const skipped = cause instanceof RouteNoProvider || cause instanceof NoQualifyingModelError ? cause.skipped : [];
    try {
      this.d.db.transaction(() => {
        this.d.ledger.open({ id: requestId, client: req.client.name, endpoint: req.endpoint, modelRequested: model, stream: req.stream, payment: 'xcashu', skipped: skipped.map((s) => ({ provider: s.providerId, reason: s.reason })), time: this.d.clock() });
        this.d.ledger.finishRequest(requestId, { status: 'failed', errorCode: toApiError(error).code, error: error.message });
      })();
    } catch (e) {
      this.d.logger.warn('a refused request could not be recorded', { request: requestId, error: (e as Error).message });
    }
  }

  /** The input fee the wallet may add to a token at this mint, estimated high (sats). */
  feeSat(mint: string): number {
    const ppk = this.d.feePpk?.(mint) ?? 0;
    return Math.ceil((FEE_PROOFS * ppk) / 1000);
  }

  private budgetLeftSats(client: BudgetLimits): number | undefined {
    if (client.dailySats === null) return undefined;
    return Math.max(0, msatToSatFloor(satToMsat(client.dailySats) - this.d.budgets.spentTodayMsat(client.name)));
  }
}
