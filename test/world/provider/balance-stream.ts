// Live streaming in the balance (API-key) mode, as routstr-core v0.4.5 upstream/base.py does
// it: every upstream SSE event is forwarded as soon as the upstream makes it (the fake
// upstream waits `chunkDelayMs` before each), and the cost comes at the end:
// - /v1/chat/completions (handle_streaming_chat_completion): the upstream's usage chunk is
//   held back, settled, and sent last with the cost injected, then `data: [DONE]`.
// - /v1/messages (handle_streaming_messages_completion): events pass through, then a final
//   `event: cost` message carries the usage and the cost.
import type { ServerResponse } from 'node:http';
import { replyPieces, type Reply } from './content.ts';

/** Python's json.dumps with its defaults (", " and ": " separators, ASCII only), as the node re-serialises chunks. */
export function pyJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return ascii(JSON.stringify(v) ?? 'null');
  if (Array.isArray(v)) return `[${v.map(pyJson).join(', ')}]`;
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  return `{${entries.map(([k, x]) => `${ascii(JSON.stringify(k))}: ${pyJson(x)}`).join(', ')}}`;
}
const ascii = (s: string) => s.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** What the node has settled once the upstream stream is over. */
export interface Settled {
  /** CostData.dict() of the charge. */
  cost: Record<string, number>;
  /** The key's balance after the charge (`remaining_balance_msats`). */
  remainingMsat: number;
}

export interface LiveStream {
  res: ServerResponse;
  headers: Record<string, string>;
  delay(ms: number): Promise<void>;
  chunkDelayMs: number;
  /** Upstream drops the connection after this many events (the midStreamDrop knob). */
  dropAfter: number | null;
  /** A hostile node's stream that never ends (the endlessMs knob, hostile.ts): a chunk every this many ms, never the usage chunk. */
  endlessMs: number | null;
  /** The node's provider_type, stamped into each JSON chunk's `provider`. */
  provider: string;
  modelId: string;
  id: string;
  createdSec: number;
  reply: Reply;
  promptTokens: number;
  /** Whether the upstream reports usage (the noUsage knob turns it off). */
  usageReported: boolean;
  /** Whether the client went away. */
  gone(): boolean;
  /** The legacyCostField knob. */
  legacy: 'top-level' | 'metadata' | null;
  /** Settle the reservation with the usage the node saw (none: a zero charge). */
  settle(usage: { input: number; output: number } | null): Settled;
  /** The stream broke off (client gone or upstream dropped): the node settles with no usage. */
  abort(): void;
}

/** inject_cost_metadata: usage.cost (+ cost_sats, remaining_balance_msats), metadata.routstr, top-level cost. */
export function injectCost(obj: Record<string, unknown>, s: Settled, provider: string, legacy: 'top-level' | 'metadata' | null = null): void {
  obj.provider = provider;
  const c = s.cost;
  const sats = Math.floor(c.total_msats / 1000);
  const usage = obj.usage as Record<string, unknown> | undefined;
  if (usage && typeof usage === 'object') {
    const cost: Record<string, number> = {
      base_msats: c.base_msats,
      input_msats: c.input_msats,
      output_msats: c.output_msats,
      total_msats: c.total_msats,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
      cache_read_msats: 0,
      cache_creation_msats: 0,
    };
    if (c.total_usd) cost.total_usd = c.total_usd;
    usage.cost = cost;
    usage.cost_sats = sats;
    usage.remaining_balance_msats = s.remainingMsat;
    if ('input_tokens' in usage) {
      usage.cache_read_input_tokens ??= 0;
      usage.cache_creation_input_tokens ??= 0;
    }
  }
  obj.metadata = { ...((obj.metadata as object) ?? {}), routstr: { cost: c, sats_cost: sats, remaining_balance_msats: s.remainingMsat } };
  obj.cost = { ...c, sats_cost: sats, remaining_balance_msats: s.remainingMsat };
  if (legacy) dropNewCostFields(obj, legacy);
}

/** The legacyCostField knob: an older node put the cost only in a top-level `cost` or in `metadata.routstr`. */
export function dropNewCostFields(obj: Record<string, unknown>, legacy: 'top-level' | 'metadata'): void {
  const usage = obj.usage as Record<string, unknown> | undefined;
  if (usage && typeof usage === 'object') {
    delete usage.cost;
    delete usage.cost_sats;
  }
  if (legacy === 'top-level') delete obj.metadata;
  else delete obj.cost;
}

/**
 * Write `frames` one by one, each after the upstream's chunk delay. Returns false when the
 * stream broke off (client gone, or the upstream dropped it: the socket is destroyed).
 */
async function forward(s: LiveStream, frames: string[]): Promise<boolean> {
  for (const [i, frame] of frames.entries()) {
    await s.delay(s.chunkDelayMs);
    if (s.gone()) return false;
    if (s.dropAfter !== null && i >= s.dropAfter) {
      // The upstream connection broke: the node's generator raises and the client's stream
      // ends without its terminating chunk.
      s.res.socket?.destroy();
      return false;
    }
    // Resolves once handed to the socket, so a drop never discards chunks already sent.
    await new Promise<void>((resolve) => s.res.write(frame, () => resolve()));
  }
  return true;
}

function begin(s: LiveStream): void {
  s.res.writeHead(200, { ...s.headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  s.res.flushHeaders();
}

/** A chat completion streamed live; resolves with the status (0 when it broke off). */
export async function streamChat(s: LiveStream): Promise<number> {
  const chunk = (choices: unknown[]) => ({ id: s.id, object: 'chat.completion.chunk', created: s.createdSec, model: s.modelId, choices, provider: s.provider });
  const frames = replyPieces(s.reply.content).map((content, i) =>
    `data: ${pyJson(chunk([{ index: 0, delta: i === 0 ? { role: 'assistant', content } : { content }, finish_reason: null }]))}\n\n`,
  );
  frames.push(`data: ${pyJson(chunk([{ index: 0, delta: {}, finish_reason: s.reply.finishReason }]))}\n\n`);
  begin(s);
  if (!(await forward(s, frames))) return abort(s);
  if (s.endlessMs !== null) {
    // Hostile (hostile.ts): more chunks until the client leaves, which the node settles as a break-off.
    const more = `data: ${pyJson(chunk([{ index: 0, delta: { content: 'more ' }, finish_reason: null }]))}\n\n`;
    while (!s.gone()) {
      await s.delay(s.endlessMs);
      if (!s.gone()) await new Promise<void>((resolve) => s.res.write(more, () => resolve()));
    }
    return abort(s);
  }
  // The upstream's usage chunk (choices: []) and its [DONE]: held back by the node.
  let usage: Record<string, unknown> | null = null;
  if (s.usageReported) {
    await s.delay(s.chunkDelayMs);
    usage = { prompt_tokens: s.promptTokens, completion_tokens: s.reply.completionTokens, total_tokens: s.promptTokens + s.reply.completionTokens };
  }
  await s.delay(s.chunkDelayMs);
  if (s.gone()) return abort(s);
  const settled = s.settle(usage ? { input: s.promptTokens, output: s.reply.completionTokens } : null);
  // No usage chunk from the upstream: the node builds one from the (zero) cost.
  const last: Record<string, unknown> = { ...chunk([]), usage: usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } };
  injectCost(last, settled, s.provider, s.legacy);
  s.res.end(`data: ${pyJson(last)}\n\ndata: [DONE]\n\n`);
  return 200;
}

/**
 * An Anthropic /v1/messages stream, live. The node adds up `usage.output_tokens` of every
 * event, so message_start's 1 is counted on top of message_delta's cumulative count.
 */
export async function streamMessages(s: LiveStream): Promise<number> {
  const event = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${pyJson({ type, ...data, provider: s.provider })}\n\n`;
  const usageOn = s.usageReported;
  const frames = [
    event('message_start', {
      message: {
        id: `msg_${s.id}`,
        type: 'message',
        role: 'assistant',
        model: s.modelId,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        ...(usageOn ? { usage: { input_tokens: s.promptTokens, output_tokens: 1 } } : {}),
      },
    }),
    event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    ...replyPieces(s.reply.content).map((text) => event('content_block_delta', { index: 0, delta: { type: 'text_delta', text } })),
    event('content_block_stop', { index: 0 }),
    event('message_delta', {
      delta: { stop_reason: s.reply.finishReason === 'length' ? 'max_tokens' : 'end_turn', stop_sequence: null },
      ...(usageOn ? { usage: { output_tokens: s.reply.completionTokens } } : {}),
    }),
    event('message_stop', {}),
  ];
  begin(s);
  if (!(await forward(s, frames))) return abort(s);
  const input = usageOn ? s.promptTokens : 0;
  const output = usageOn ? 1 + s.reply.completionTokens : 0;
  if (input > 0 || output > 0) {
    const settled = s.settle({ input, output });
    const combined: Record<string, unknown> = {
      model: s.modelId,
      usage: { input_tokens: input, output_tokens: output, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
    };
    injectCost(combined, settled, s.provider, s.legacy);
    s.res.end(`event: cost\ndata: ${pyJson(combined)}\n\n`);
  } else {
    // finalize_without_usage: only the cost object.
    const settled = s.settle(null);
    s.res.end(`event: cost\ndata: ${pyJson({ cost: settled.cost })}\n\n`);
  }
  return 200;
}

function abort(s: LiveStream): number {
  s.abort();
  if (!s.res.destroyed) s.res.destroy();
  return 0;
}
