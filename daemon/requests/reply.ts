// What the lifecycle tells the client and the `payments` topic: the sink guarded so each call
// comes at most once and in the contract's order (a sink that throws means the client is gone;
// the request is settled all the same), and the Done and PaymentEvent shapes built from a
// finished request row.
import type { Usage } from '../../protocol/cost.ts';
import { toApiError, type DaemonError } from '../api/errors.ts';
import type { Accepted, Done, PaymentEvent, ResponseSink } from './contract.ts';
import type { RequestRow } from './ledger.ts';

export class Reply {
  accepted = false;
  ended = false;

  constructor(readonly sink: ResponseSink) {}

  accept(a: Accepted): void {
    if (this.accepted) return;
    this.accepted = true;
    try {
      this.sink.accepted(a);
    } catch {
      // the client is gone; what follows is settled all the same
    }
  }

  async error(err: DaemonError | Error, requestId?: string): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    try {
      await this.sink.error(toApiError(err), requestId);
    } catch {
      // the client is gone
    }
  }

  async end(f: () => void | Promise<void>): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    try {
      await f();
    } catch {
      // the client is gone
    }
  }
}

export function usageJson(usage: Usage | null): Done['usage'] {
  return usage && { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.promptTokens + usage.completionTokens };
}

export function costJson(row: RequestRow): Done['cost'] {
  return { sent_sats: row.sentSat, change_sats: row.changeSat, charged_msat: row.chargedMsat, expected_msat: row.expectedMsat, reported_msat: row.reportedMsat };
}

export function doneOf(row: RequestRow, usage: Usage | null, overheadMs: number): Done {
  return { requestId: row.id, provider: row.provider ?? '', model: row.modelServed ?? row.modelRequested, usage: usageJson(usage), cost: costJson(row), flags: [...row.flags], overheadMs };
}

export function paymentEvent(row: RequestRow, usage: Usage | null, late: boolean, at: number): PaymentEvent {
  const rowUsage = row.promptTokens !== null ? { promptTokens: row.promptTokens, completionTokens: row.completionTokens ?? 0 } : null;
  return {
    topic: 'payments', request_id: row.id, time: new Date(at).toISOString(), client: row.client, endpoint: row.endpoint,
    model: row.modelServed ?? row.modelRequested, provider: row.provider, status: row.status, payment: row.payment,
    usage: usageJson(usage ?? rowUsage), cost: costJson(row), flags: [...row.flags], attempts: row.attempts, late,
  };
}
