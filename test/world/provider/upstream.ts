// The node's fake upstream: what an OpenAI-compatible (chat, embeddings, Responses) or an
// Anthropic (Messages) upstream answers, in those APIs' own shapes, before the node touches it.
// Deterministic: the reply is "<provider> heard: <last user message>", tokens are characters / 4.
import { chatReply, embeddingOf, embeddingTokensOf, inputTokensOf, promptTokensOf, replyPieces } from './content.ts';
import { maxCompletionTokens, type UpstreamUsd } from './pricing.ts';
import type { ModelSpec } from './types.ts';

export type Endpoint = 'chat' | 'embeddings' | 'responses' | 'messages';

/** The paid routes and the endpoint each one is. */
export const PAID_PATHS: Record<string, Endpoint> = {
  '/v1/chat/completions': 'chat',
  '/v1/embeddings': 'embeddings',
  '/v1/responses': 'responses',
  '/v1/messages': 'messages',
};

export interface UpstreamRequest {
  endpoint: Endpoint;
  body: Record<string, unknown>;
  model: ModelSpec;
  provider: string;
  requestId: string;
  createdSec: number;
  /** The completionTokens knob. */
  forcedTokens: number | null;
}

export interface UpstreamAnswer {
  promptTokens: number;
  completionTokens: number;
  streaming: boolean;
  /** The upstream's JSON body, its usage object included unless `usage` is null. */
  json(usage: UsageFields | null): Record<string, unknown>;
  /** The upstream's SSE stream as text (each event ends with a blank line). */
  sse(usage: UsageFields | null): string;
}

/** Cost fields an upstream that prices in USD adds to its usage (OpenRouter's usage.cost and cost_details). */
export interface UsageFields {
  usd: UpstreamUsd | null;
}

/** An upstream answer that is not 200 (e.g. Anthropic's 400 for a missing max_tokens). */
export class UpstreamRefusal extends Error {
  constructor(readonly status: number, readonly body: Record<string, unknown>) {
    super(`upstream answered ${status}`);
    this.name = 'UpstreamRefusal';
  }
}

const usdFields = (u: UsageFields | null): Record<string, unknown> =>
  u?.usd
    ? {
        cost: u.usd.costUsd,
        is_byok: false,
        cost_details: { upstream_inference_cost: null, upstream_inference_prompt_cost: u.usd.promptUsd, upstream_inference_completions_cost: u.usd.completionUsd },
      }
    : {};

const sseEvent = (data: unknown, event?: string) => `${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;

const maxTokensOf = (raw: unknown, model: ModelSpec) => (Number.isFinite(Number(raw)) && raw !== null && raw !== undefined ? Math.trunc(Number(raw)) : maxCompletionTokens(model));

/** What the upstream answers this request; throws UpstreamRefusal when it refuses it. */
export function upstreamAnswer(r: UpstreamRequest): UpstreamAnswer {
  switch (r.endpoint) {
    case 'chat':
      return chat(r);
    case 'embeddings':
      return embeddings(r);
    case 'responses':
      return responses(r);
    case 'messages':
      return messages(r);
  }
}

function chat(r: UpstreamRequest): UpstreamAnswer {
  const { body, model } = r;
  const reply = chatReply(r.provider, body.messages, maxTokensOf(body.max_tokens ?? body.max_completion_tokens, model), r.forcedTokens);
  const promptTokens = promptTokensOf(body.messages);
  const id = `chatcmpl-${r.requestId}`;
  const usageOf = (u: UsageFields | null) => ({ prompt_tokens: promptTokens, completion_tokens: reply.completionTokens, total_tokens: promptTokens + reply.completionTokens, ...usdFields(u) });
  return {
    promptTokens,
    completionTokens: reply.completionTokens,
    streaming: body.stream === true,
    json: (u) => ({
      id,
      object: 'chat.completion',
      created: r.createdSec,
      model: model.id,
      choices: [{ index: 0, message: { role: 'assistant', content: reply.content }, finish_reason: reply.finishReason }],
      ...(u ? { usage: usageOf(u) } : {}),
    }),
    // With stream_options.include_usage (which the node forces) every chunk carries "usage": null but the last.
    sse: (u) => {
      const chunk = (choices: unknown[], usage: unknown = null) => ({ id, object: 'chat.completion.chunk', created: r.createdSec, model: model.id, choices, ...(u ? { usage } : {}) });
      const events = replyPieces(reply.content).map((content, i) => chunk([{ index: 0, delta: i === 0 ? { role: 'assistant', content } : { content }, finish_reason: null }]));
      events.push(chunk([{ index: 0, delta: {}, finish_reason: reply.finishReason }]));
      if (u) events.push(chunk([], usageOf(u)));
      return events.map((e) => sseEvent(e)).join('') + sseEvent('[DONE]');
    },
  };
}

function embeddings(r: UpstreamRequest): UpstreamAnswer {
  const { body, model } = r;
  const promptTokens = embeddingTokensOf(body.input);
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  return {
    promptTokens,
    completionTokens: 0,
    streaming: false,
    json: (u) => ({
      object: 'list',
      data: inputs.map((text, index) => ({ object: 'embedding', index, embedding: embeddingOf(String(text ?? '')) })),
      model: model.id,
      ...(u ? { usage: { prompt_tokens: promptTokens, total_tokens: promptTokens, ...usdFields(u) } } : {}),
    }),
    sse: () => '',
  };
}

function responses(r: UpstreamRequest): UpstreamAnswer {
  const { body, model } = r;
  const input = body.input;
  const reply = chatReply(r.provider, input, maxTokensOf(body.max_output_tokens, model), r.forcedTokens);
  const promptTokens = inputTokensOf(body.instructions, input);
  const id = `resp_${r.requestId.replace(/-/g, '')}`;
  const itemId = `msg_${r.requestId.replace(/-/g, '')}`;
  const usageOf = (u: UsageFields | null) => ({
    input_tokens: promptTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: reply.completionTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: promptTokens + reply.completionTokens,
    ...usdFields(u),
  });
  const complete = reply.finishReason === 'stop';
  const response = (u: UsageFields | null, done: boolean) => ({
    id,
    object: 'response',
    created_at: r.createdSec,
    status: done ? (complete ? 'completed' : 'incomplete') : 'in_progress',
    error: null,
    incomplete_details: done && !complete ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: model.id,
    output: done ? [{ type: 'message', id: itemId, status: complete ? 'completed' : 'incomplete', role: 'assistant', content: [{ type: 'output_text', text: reply.content, annotations: [] }] }] : [],
    usage: done && u ? usageOf(u) : null,
  });
  return {
    promptTokens,
    completionTokens: reply.completionTokens,
    streaming: body.stream === true,
    json: (u) => {
      const out: Record<string, unknown> = response(u, true);
      if (!u) delete out.usage;
      return out;
    },
    sse: (u) => {
      let seq = 0;
      const parts = [sseEvent({ type: 'response.created', sequence_number: seq++, response: response(u, false) }, 'response.created')];
      for (const delta of replyPieces(reply.content)) {
        parts.push(sseEvent({ type: 'response.output_text.delta', sequence_number: seq++, item_id: itemId, output_index: 0, content_index: 0, delta }, 'response.output_text.delta'));
      }
      parts.push(sseEvent({ type: 'response.completed', sequence_number: seq++, response: response(u, true) }, 'response.completed'));
      return parts.join('');
    },
  };
}

function messages(r: UpstreamRequest): UpstreamAnswer {
  const { body, model } = r;
  // Anthropic refuses a Messages request without max_tokens; the node passes the 400 through.
  if (body.max_tokens === undefined || body.max_tokens === null) {
    throw new UpstreamRefusal(400, { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } });
  }
  const reply = chatReply(r.provider, body.messages, maxTokensOf(body.max_tokens, model), r.forcedTokens);
  const promptTokens = inputTokensOf(body.system, body.messages);
  const id = `msg_${r.requestId.replace(/-/g, '')}`;
  const stopReason = reply.finishReason === 'stop' ? 'end_turn' : 'max_tokens';
  const usageOf = (u: UsageFields | null, outputTokens: number) => ({ input_tokens: promptTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: outputTokens, ...usdFields(u) });
  const message = (u: UsageFields | null, done: boolean) => ({
    id,
    type: 'message',
    role: 'assistant',
    model: model.id,
    content: done ? [{ type: 'text', text: reply.content }] : [],
    stop_reason: done ? stopReason : null,
    stop_sequence: null,
    ...(u ? { usage: usageOf(done ? u : null, done ? reply.completionTokens : 1) } : {}),
  });
  return {
    promptTokens,
    completionTokens: reply.completionTokens,
    streaming: body.stream === true,
    json: (u) => message(u, true),
    // message_delta's usage is cumulative (input and output tokens), as Anthropic sends it now.
    sse: (u) => {
      const parts = [
        sseEvent({ type: 'message_start', message: message(u ? { usd: null } : null, false) }, 'message_start'),
        sseEvent({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, 'content_block_start'),
        sseEvent({ type: 'ping' }, 'ping'),
        ...replyPieces(reply.content).map((text) => sseEvent({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }, 'content_block_delta')),
        sseEvent({ type: 'content_block_stop', index: 0 }, 'content_block_stop'),
        sseEvent({ type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, ...(u ? { usage: { input_tokens: promptTokens, output_tokens: reply.completionTokens, ...usdFields(u) } } : {}) }, 'message_delta'),
        sseEvent({ type: 'message_stop' }, 'message_stop'),
      ];
      return parts.join('');
    },
  };
}
