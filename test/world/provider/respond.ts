// What the node does to its upstream's answer before the client sees it (routstr-core v0.4.5,
// upstream/base.py): stamp `provider`, write the cost into `usage` (and X-Routstr-* headers),
// re-serialise with json.dumps, and for streams replay the buffered lines. Two warts are kept:
// the upstream's Content-Length may survive the re-serialisation (then uvicorn cuts the body),
// and the Responses API stream is split on a literal backslash-n, so no usage is ever found.
import type { ServerResponse } from 'node:http';
import { pyDumps } from './http.ts';
import { costObject, type Cost } from './pricing.ts';
import type { ProviderKnobs } from './types.ts';

/** _apply_provider_field: "<provider_type>", or "<type>:<upstream's provider>" when the upstream named one. */
function stampProvider(obj: Record<string, unknown>, provider: string): void {
  const existing = typeof obj.provider === 'string' ? obj.provider.trim() : '';
  if (!existing) obj.provider = provider;
  else if (existing !== provider && !existing.startsWith(`${provider}:`)) obj.provider = `${provider}:${existing}`;
}

/** Where the cost goes: usage.cost and usage.cost_sats (_inject_cost_into_usage), or an older node's field. */
function injectCost(obj: Record<string, unknown>, cost: Cost, legacy: ProviderKnobs['legacyCostField']): void {
  if (legacy === 'top-level') obj.cost = costObject(cost);
  else if (legacy === 'metadata') obj.metadata = { routstr: { cost: costObject(cost) } };
  else if (obj.usage && typeof obj.usage === 'object') {
    const usage = obj.usage as Record<string, unknown>;
    usage.cost = costObject(cost);
    usage.cost_sats = Math.floor(cost.totalMsat / 1000);
  }
}

/** The node's non-streaming body: the upstream JSON with provider and cost, json.dumps'd. */
export function nodeJsonBody(upstream: Record<string, unknown>, provider: string, cost: Cost | null, legacy: ProviderKnobs['legacyCostField'], finish?: Finish): string {
  const obj = structuredClone(upstream);
  stampProvider(obj, provider);
  if (cost && 'usage' in obj) injectCost(obj, cost, legacy);
  return pyDumps(finish ? finish(obj) : obj);
}

/** A last change to each body object before it is serialised (a hostile node's, provider/hostile.ts). */
export type Finish = (obj: Record<string, unknown>) => unknown;

/**
 * handle_x_cashu_streaming_response: the whole upstream stream, split into lines; every JSON
 * data line gets `provider`, the one carrying usage gets the cost; each line ends in one "\n".
 */
export function nodeSse(upstreamSse: string, provider: string, cost: Cost | null, legacy: ProviderKnobs['legacyCostField'], finish?: Finish): string {
  const lines = upstreamSse.trim().split('\n');
  lines.forEach((line, i) => {
    if (!line.startsWith('data: ')) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line.slice(6));
    } catch {
      return; // non-JSON data lines ([DONE]) pass through
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return;
    const data = obj as Record<string, unknown>;
    if (!('provider' in data)) stampProvider(data, provider);
    if (cost && data.usage) injectCost(data, cost, legacy);
    lines[i] = 'data: ' + pyDumps(finish ? finish(data) : data);
  });
  return lines.map((l) => l + '\n').join('');
}

/**
 * handle_x_cashu_streaming_responses_response splits on "\\n" (a backslash and an n), so the
 * whole stream is one line that starts with "event:": no usage, no cost, no change; the client
 * gets the stream stripped, with a literal backslash-n appended.
 */
export function nodeResponsesSse(upstreamSse: string): string {
  return upstreamSse.trim() + '\\n';
}

/** The Content-Length the node keeps from its upstream: a compact or pretty-printed upstream body's. */
export function staleLength(kind: 'smaller' | 'larger', upstream: Record<string, unknown>, bodyBytes: number): number {
  if (kind === 'smaller') return Math.min(Buffer.byteLength(JSON.stringify(upstream)), bodyBytes - 1);
  return Math.max(Buffer.byteLength(JSON.stringify(upstream, null, 2)), bodyBytes + 1);
}

/**
 * Send a JSON body under a Content-Length that does not fit it, as uvicorn does: headers go out
 * first; a body longer than declared is not written at all ("Response content longer than
 * Content-Length"), a shorter one is written whole; either way the connection is then closed.
 */
export function sendWithStaleLength(res: ServerResponse, status: number, body: string, declared: number, headers: Record<string, string>): void {
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(declared) });
  const bytes = Buffer.byteLength(body);
  if (bytes <= declared) res.write(body);
  else res.flushHeaders();
  res.socket?.end();
}
