// Hostile providers (issue 13): what a node that lies does, knob by knob. No honest
// routstr-core v0.4.5 node does any of this; each knob departs from one honest behaviour,
// named here, so the daemon's containment is tested against the lie and not a kinder world:
//   usageReportFactor  _inject_cost_into_usage keeps the upstream's token counts
//                      -> reports fewer tokens than it bills for
//   changeSurplus      change = amount - ceil(total_msats / 1000) (upstream/base.py)
//                      -> more than it owes, real ecash from its own pool
//   changeMint         change minted at the redeemed token's mint (wallet.py send_token)
//                      -> change from another mint, which the payer may not trust
//   endlessMs          an X-Cashu stream is buffered, then replayed to `data: [DONE]`
//                      -> an answer that never ends (stream or JSON)
//   hugeBodyBytes      the upstream's answer, re-serialised -> padded to N bytes
//   wrongShape         the upstream's chat shape (`choices` array, `usage` object)
//                      -> valid JSON of another shape
//   badUsage           integer token counts and an integer msat cost (CostData)
//                      -> negative, 2^64, NaN/Infinity (Python's json.dumps writes them bare
//                      with its default allow_nan=True), or strings
//   impersonate        one `u` tag per endpoint of its own (nostr/listing.py) -> another's URL
//                      (provider.ts, in the announcement)
import type { ServerResponse } from 'node:http';
import { sumProofs } from '@cashu/cashu-ts';
import { InsufficientPoolError, type Purse, type Redeemed } from './purse.ts';
import type { BadUsage, ProviderKnobs } from './types.ts';

const TOKEN_FIELDS = ['prompt_tokens', 'completion_tokens', 'total_tokens', 'input_tokens', 'output_tokens'] as const;
const HUGE = 2 ** 64;
/** Bytes of padding per write (and per SSE event) for hugeBodyBytes. */
const PIECE_BYTES = 64 * 1024;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Whether any knob changes the body the node writes (the honest path stays byte-identical). */
export function altersBody(k: ProviderKnobs): boolean {
  return k.usageReportFactor !== 1 || k.wrongShape !== null || k.badUsage !== null;
}

/** The token count a node reports for a real count. */
export function reportedCount(real: number, k: ProviderKnobs): number {
  return Math.floor(real * k.usageReportFactor);
}

function badValue(kind: BadUsage, real: number): unknown {
  switch (kind) {
    case 'negative':
      return -Math.max(1, real);
    case 'huge':
      return HUGE;
    case 'nan':
      return NaN;
    case 'infinity':
      return Infinity;
    case 'nan-string':
      return 'NaN';
    case 'string':
      return String(real);
  }
}

/** The X-Routstr-Cost-Msats header beside a bad usage (a string header can only be wrong in its text). */
export function badCostHeader(kind: BadUsage, realMsat: number): string {
  const v = badValue(kind, realMsat);
  return typeof v === 'number' && Number.isNaN(v) ? 'NaN' : kind === 'huge' ? '18446744073709551616' : String(v);
}

/**
 * One node body object (a JSON answer, or one SSE data object, after the node stamped its
 * provider and cost) as the hostile node writes it. The result goes through pyDumps.
 */
export function mangle(obj: Record<string, unknown>, k: ProviderKnobs): unknown {
  // Usage sits at the top (chat, embeddings), in `response` (Responses events) or `message` (Anthropic).
  const usages = [obj.usage, isObject(obj.response) ? obj.response.usage : undefined, isObject(obj.message) ? obj.message.usage : undefined].filter(isObject);
  for (const u of usages) {
    for (const f of TOKEN_FIELDS) {
      if (typeof u[f] !== 'number') continue;
      if (k.usageReportFactor !== 1) u[f] = reportedCount(u[f] as number, k);
      if (k.badUsage) u[f] = badValue(k.badUsage, u[f] as number);
    }
    if (k.badUsage && isObject(u.cost) && typeof u.cost.total_msats === 'number') u.cost.total_msats = badValue(k.badUsage, u.cost.total_msats);
  }
  switch (k.wrongShape) {
    case 'no-choices':
      delete obj.choices;
      return obj;
    case 'choices-object':
      if (Array.isArray(obj.choices)) obj.choices = Object.fromEntries(obj.choices.map((c, i) => [String(i), c]));
      return obj;
    case 'usage-array':
      if (isObject(obj.usage)) obj.usage = Object.entries(obj.usage).map(([key, value]) => ({ key, value }));
      return obj;
    case 'array':
      return [obj];
    default:
      return obj;
  }
}

/** The body writer, when a knob makes the node write its 200 answer the hostile way. */
export function hostileWriter(k: ProviderKnobs): ((res: ServerResponse, w: BodyWrite) => void) | null {
  if (k.endlessMs !== null) return (res, w) => writeEndless(res, w, k.endlessMs!);
  if (k.hugeBodyBytes !== null) return (res, w) => writeHuge(res, w, k.hugeBodyBytes!);
  return null;
}

export interface BodyWrite {
  streaming: boolean;
  headers: Record<string, string>;
  /** The answer as the node would have written it. */
  text: string;
  /** Keep the response for the provider's stop() to destroy. */
  hang(res: ServerResponse): void;
}

const contentType = (streaming: boolean) => (streaming ? 'text/event-stream; charset=utf-8' : 'application/json');
const sseChunk = (content: string) => `data: {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "${content}"}, "finish_reason": null}]}\n\n`;

/** Write pieces as fast as the socket takes them (or one per `everyMs`) until `next` says null or the client leaves. */
function pump(res: ServerResponse, next: () => string | null, everyMs: number | null): void {
  let closed = false;
  res.on('close', () => (closed = true));
  const step = () => {
    while (!closed) {
      const piece = next();
      if (piece === null) return void res.end();
      const ok = res.write(piece);
      if (everyMs !== null) return void setTimeout(step, everyMs).unref();
      if (!ok) return void res.once('drain', step);
    }
  };
  step();
}

/** An answer that never ends: the honest body less its end, then a piece every `everyMs`. */
function writeEndless(res: ServerResponse, w: BodyWrite, everyMs: number): void {
  w.hang(res);
  res.writeHead(200, { ...w.headers, 'content-type': contentType(w.streaming), 'cache-control': 'no-cache' });
  // JSON: the answer opened and never closed; SSE: every event but [DONE], then more chunks.
  const head = w.streaming
    ? w.text.replace(/data: \[DONE\]\n*$/, '')
    : '{"id": "chatcmpl-endless", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "';
  let first = true;
  pump(
    res,
    () => {
      if (first) return ((first = false), head);
      return w.streaming ? sseChunk('more ') : 'more ';
    },
    everyMs,
  );
}

/** The honest answer padded to `bytes`: a `padding` field in the JSON, content chunks before the SSE. */
function writeHuge(res: ServerResponse, w: BodyWrite, bytes: number): void {
  w.hang(res);
  const textBytes = Buffer.byteLength(w.text);
  if (w.streaming) {
    res.writeHead(200, { ...w.headers, 'content-type': contentType(true), 'cache-control': 'no-cache' });
    const event = sseChunk('a'.repeat(PIECE_BYTES));
    let left = Math.max(0, bytes - textBytes);
    let done = false;
    pump(
      res,
      () => {
        if (left > 0) {
          left -= event.length;
          return event;
        }
        if (done) return null;
        done = true;
        return w.text;
      },
      null,
    );
    return;
  }
  // {"padding": "aaa…", <the answer's own fields>}: valid JSON, exactly `bytes` long.
  const open = '{"padding": "';
  const close = '", ';
  const pad = Math.max(0, bytes - textBytes - open.length - close.length + 1);
  res.writeHead(200, { ...w.headers, 'content-type': contentType(false), 'content-length': String(open.length + pad + close.length + textBytes - 1) });
  const piece = 'a'.repeat(PIECE_BYTES);
  let left = pad;
  let stage = 0;
  pump(
    res,
    () => {
      if (stage === 0) return (stage = 1), open;
      if (left > 0) {
        const n = Math.min(left, PIECE_BYTES);
        left -= n;
        return n === PIECE_BYTES ? piece : piece.slice(0, n);
      }
      if (stage === 1) return (stage = 2), close + w.text.slice(1);
      return null;
    },
    null,
  );
}

export interface IssuedChange {
  token: string;
  /** The mint it was minted at (as spelled in the token). */
  mint: string;
  /** In the paid token's unit. */
  amount: number;
}

const poolAmount = (purse: Purse, mint: string, unit: string) => sumProofs(purse.pool(mint, unit)).toNumber();

/**
 * The change token: `owed` (honest), plus changeSurplus from the node's pool, at changeMint
 * when set. A node can only give what its pool holds: the surplus shrinks to fit, and change
 * at another mint falls back to the paid one when the pool there is short. Null: nothing to send.
 */
export async function issueChange(purse: Purse, paid: Redeemed, owed: number, k: ProviderKnobs): Promise<IssuedChange | null> {
  const target = k.changeMint ?? paid.mint;
  // At the paid mint the pool already holds the redeemed token, which covers what is owed.
  const surplus = Math.max(0, Math.min(k.changeSurplus, poolAmount(purse, target, paid.unit) - owed));
  const tries: [string, number][] = [
    [target, owed + surplus],
    [target, owed],
    [paid.mint, owed],
  ];
  const seen = new Set<string>();
  let last: unknown;
  for (const [mint, amount] of tries) {
    const key = `${mint}|${amount}`;
    if (amount <= 0 || seen.has(key)) continue;
    seen.add(key);
    try {
      return { token: await purse.issue(mint, paid.unit, amount), mint, amount };
    } catch (err) {
      if (!(err instanceof InsufficientPoolError)) throw err;
      last = err;
    }
  }
  if (last) throw last;
  return null;
}
