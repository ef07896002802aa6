// What a Routstr node reported about one request: the tokens it counted and the cost it says
// it charged (ROUTSTR.md section 4). Reports are read, never trusted: a value that is not a
// safe non-negative integer is rejected with a reason and never becomes a number that moves
// money. The charge itself is always sent - change; this is the provider's claim beside it.
//
// Where the cost is, by routstr-core version (upstream/base.py v0.4.5):
//   usage.cost.total_msats          _inject_cost_into_usage (body, SSE usage line, Responses,
//                                   Anthropic message.usage); preferred
//   cost.total_msats                older nodes' top-level `cost` (v0.1-v0.2 response_json["cost"]),
//                                   still written in balance mode; also `event: cost` data
//   metadata.routstr.cost.total_msats  inject_cost_metadata (balance mode)
//   X-Routstr-Cost-Msats            _inject_cost_response_headers (str(int(total_msats)))
// Never `usage.cost_sats` (total_msats // 1000: rounds down while the charge rounds up), and
// never a bare number in `usage.cost` (OpenRouter's USD figure, passed through by older nodes).

export type CostSource = 'usage.cost' | 'cost' | 'metadata.routstr.cost' | 'event:cost' | 'header';

/** Preference when several places report a cost (the first present wins). */
export const COST_SOURCE_ORDER: readonly CostSource[] = ['usage.cost', 'cost', 'metadata.routstr.cost', 'event:cost', 'header'];

export interface CostReading {
  source: CostSource;
  totalMsat: number;
}

export type ValueProblem = 'missing' | 'not_a_number' | 'string' | 'negative' | 'not_integer' | 'too_large' | 'bare_number' | 'not_an_object';

/** A reported value that was refused, with why (kept as evidence; `raw` is at most 64 chars). */
export interface RejectedValue {
  field: string;
  problem: ValueProblem;
  raw: string;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

/** Everything one answer reported, merged over its body, headers and stream events. */
export interface Reported {
  usage: Usage | null;
  /** The preferred valid cost reading, msat; null when none was valid. */
  costMsat: number | null;
  costSource: CostSource | null;
  /** Every valid reading (several places may disagree: a `cost_mismatch` for the ledger). */
  readings: CostReading[];
  rejected: RejectedValue[];
}

export const COST_HEADER = 'x-routstr-cost-msats';

const clip = (s: string): string => (s.length > 64 ? `${s.slice(0, 61)}...` : s);
const rawOf = (v: unknown): string => {
  try {
    return clip(typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v)));
  } catch {
    return clip(String(v));
  }
};

/**
 * The most tokens one answer may report (the most a request may ask for too, protocol/openai.ts):
 * ten times the largest context window offered today. More is a lie, refused like a negative
 * count; the bound keeps usage x any safe per-token price (protocol/pricing.ts) a safe integer.
 */
export const MAX_REPORTED_TOKENS = 100_000_000;

/** A JSON value as a safe non-negative integer, or why not. */
export function countValue(v: unknown): number | ValueProblem {
  if (v === undefined || v === null) return 'missing';
  if (typeof v === 'string') return 'string';
  if (typeof v !== 'number' || Number.isNaN(v)) return 'not_a_number';
  if (v < 0) return 'negative';
  if (!Number.isFinite(v) || v > Number.MAX_SAFE_INTEGER) return 'too_large';
  if (!Number.isInteger(v)) return 'not_integer';
  return v === 0 ? 0 : v; // JSON's -0 is 0
}

/** A reported token count, or why not. */
export function tokenCountValue(v: unknown): number | ValueProblem {
  const n = countValue(v);
  return typeof n === 'number' && n > MAX_REPORTED_TOKENS ? 'too_large' : n;
}

/** The X-Routstr-Cost-Msats header value (decimal digits) as msat, or why not. */
export function headerMsatValue(v: string): number | ValueProblem {
  const s = v.trim();
  if (s === '') return 'missing';
  // One linear pattern: a backtracking one over a header of digits took quadratic time.
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) return 'not_a_number';
  if (m[1]) return 'negative';
  if (m[3] && /[1-9]/.test(m[3])) return 'not_integer';
  const n = Number(m[2]);
  return Number.isSafeInteger(n) ? n : 'too_large';
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Collects usage and cost from a body, from each stream event, and from the headers. */
export class ReportReader {
  private prompt: number | undefined;
  private completion: number | undefined;
  private readonly bySource = new Map<CostSource, number>();
  private readonly rejected: RejectedValue[] = [];

  /** A JSON body, or one SSE event's parsed data (`event` = its SSE event name). */
  addBody(body: unknown, event?: string): void {
    if (!isObject(body)) return;
    const usages: [string, unknown][] = [['usage', body.usage]];
    if (isObject(body.response)) usages.push(['response.usage', body.response.usage]); // Responses API stream events
    if (isObject(body.message)) usages.push(['message.usage', body.message.usage]); // Anthropic message_start
    for (const [field, usage] of usages) {
      if (usage === undefined || usage === null) continue; // OpenAI chunks carry "usage": null until the last
      if (!isObject(usage)) {
        this.reject(field, 'not_an_object', usage);
        continue;
      }
      this.addUsage(field, usage);
      if ('cost' in usage) this.addCost(`${field}.cost`, 'usage.cost', usage.cost);
    }
    if ('cost' in body) this.addCost('cost', event === 'cost' ? 'event:cost' : 'cost', body.cost);
    const routstr = isObject(body.metadata) && isObject(body.metadata.routstr) ? body.metadata.routstr : undefined;
    if (routstr && 'cost' in routstr) this.addCost('metadata.routstr.cost', 'metadata.routstr.cost', routstr.cost);
  }

  /** Response headers (the cost header; names are case-insensitive, pass lower-case lookups). */
  addHeaders(get: (name: string) => string | undefined): void {
    const v = get(COST_HEADER);
    if (v === undefined) return;
    const n = headerMsatValue(v);
    if (typeof n === 'number') this.bySource.set('header', n);
    else this.reject('X-Routstr-Cost-Msats', n, v, true);
  }

  result(): Reported {
    const readings: CostReading[] = [];
    for (const source of COST_SOURCE_ORDER) {
      const totalMsat = this.bySource.get(source);
      if (totalMsat !== undefined) readings.push({ source, totalMsat });
    }
    const usage =
      this.prompt === undefined && this.completion === undefined ? null : { promptTokens: this.prompt ?? 0, completionTokens: this.completion ?? 0 };
    return { usage, costMsat: readings[0]?.totalMsat ?? null, costSource: readings[0]?.source ?? null, readings, rejected: [...this.rejected] };
  }

  private addUsage(field: string, usage: Record<string, unknown>): void {
    // Chat and embeddings say prompt/completion_tokens; Responses and Anthropic input/output_tokens.
    const promptKey = 'prompt_tokens' in usage ? 'prompt_tokens' : 'input_tokens' in usage ? 'input_tokens' : undefined;
    const completionKey = 'completion_tokens' in usage ? 'completion_tokens' : 'output_tokens' in usage ? 'output_tokens' : undefined;
    if (promptKey) {
      const n = tokenCountValue(usage[promptKey]);
      if (typeof n === 'number') this.prompt = n;
      else this.reject(`${field}.${promptKey}`, n, usage[promptKey]);
    }
    if (completionKey) {
      const n = tokenCountValue(usage[completionKey]);
      if (typeof n === 'number') this.completion = n;
      else this.reject(`${field}.${completionKey}`, n, usage[completionKey]);
    }
  }

  private addCost(field: string, source: CostSource, cost: unknown): void {
    if (typeof cost === 'number') return this.reject(field, 'bare_number', cost);
    if (!isObject(cost)) return this.reject(field, 'not_an_object', cost);
    const n = countValue(cost.total_msats);
    if (typeof n === 'number') this.bySource.set(source, n);
    else this.reject(`${field}.total_msats`, n, cost.total_msats);
  }

  private reject(field: string, problem: ValueProblem, raw: unknown, text = false): void {
    if (this.rejected.length < 32) this.rejected.push({ field, problem, raw: text ? clip(String(raw)) : rawOf(raw) });
  }
}

/** Usage and cost of a complete JSON answer and its headers. */
export function readReported(body: unknown, headers?: (name: string) => string | undefined): Reported {
  const r = new ReportReader();
  r.addBody(body);
  if (headers) r.addHeaders(headers);
  return r.result();
}
