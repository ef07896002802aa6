// OpenAI-compatible request and answer shapes for the paid endpoints, parsed with zod at the
// edge. Tolerant of fields we do not use (they pass through to the provider and back to the
// client unchanged); strict where satroute or the node depends on a field: the model, the
// messages, `stream`, and `max_tokens` (routstr-core answers 400 "max_tokens must be an integer"
// to anything else, proxy.py parse_request_body_json, and sizes its reservation by it).

import { z } from 'zod';

export const PAID_ENDPOINTS = ['/v1/chat/completions', '/v1/embeddings', '/v1/responses', '/v1/messages'] as const;
export type PaidEndpoint = (typeof PAID_ENDPOINTS)[number];

export function isPaidEndpoint(path: string): path is PaidEndpoint {
  return (PAID_ENDPOINTS as readonly string[]).includes(path);
}

/** Default limit on a client's request body (base64 images make bodies of a few MB). */
export const DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024;

export type RequestBodyProblem = 'too_large' | 'invalid_json' | 'invalid_body';

/** A client's request body was refused before anything was paid; `code` is stable. */
export class RequestBodyError extends Error {
  override name = 'RequestBodyError';
  constructor(
    readonly code: RequestBodyProblem,
    message: string,
    /** Where in the body (e.g. "messages.0.role"), for invalid_body. */
    readonly path?: string,
  ) {
    super(message);
  }
}

const ModelId = z.string().min(1).max(256);
const TokenLimit = z.number().int().nonnegative().max(100_000_000);
const optionalTokenLimit = TokenLimit.nullable().optional();

const Message = z.looseObject({
  role: z.string().min(1).max(64),
  content: z.unknown().optional(),
});

export const ChatRequestSchema = z.looseObject({
  model: ModelId,
  messages: z.array(Message).min(1).max(100_000),
  stream: z.boolean().nullable().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  max_tokens: optionalTokenLimit,
  max_completion_tokens: optionalTokenLimit,
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

export const EmbeddingsRequestSchema = z.looseObject({
  model: ModelId,
  input: z.union([z.string(), z.array(z.string()).min(1), z.array(z.number()).min(1), z.array(z.array(z.number())).min(1)]),
});
export type EmbeddingsRequest = z.infer<typeof EmbeddingsRequestSchema>;

export const ResponsesRequestSchema = z.looseObject({
  model: ModelId,
  input: z.union([z.string(), z.array(z.unknown())]).optional(),
  stream: z.boolean().nullable().optional(),
  max_output_tokens: optionalTokenLimit,
});
export type ResponsesRequest = z.infer<typeof ResponsesRequestSchema>;

export const MessagesRequestSchema = z.looseObject({
  model: ModelId,
  messages: z.array(Message).min(1).max(100_000),
  max_tokens: TokenLimit,
  stream: z.boolean().nullable().optional(),
});
export type MessagesRequest = z.infer<typeof MessagesRequestSchema>;

const REQUEST_SCHEMAS = {
  '/v1/chat/completions': ChatRequestSchema,
  '/v1/embeddings': EmbeddingsRequestSchema,
  '/v1/responses': ResponsesRequestSchema,
  '/v1/messages': MessagesRequestSchema,
} as const;

export type RequestBody = ChatRequest | EmbeddingsRequest | ResponsesRequest | MessagesRequest;

/** Parse and check a client's request body for `endpoint` (size, JSON, shape). Throws RequestBodyError. */
export function parseRequestBody(endpoint: PaidEndpoint, raw: string | Uint8Array, options: { maxBytes?: number } = {}): RequestBody {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.byteLength;
  if (size > maxBytes) throw new RequestBodyError('too_large', `request body is ${size} bytes, over the ${maxBytes}-byte limit`);
  let json: unknown;
  try {
    json = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch {
    throw new RequestBodyError('invalid_json', 'request body is not valid JSON');
  }
  return checkRequestBody(endpoint, json);
}

/**
 * The deepest nesting a body may have (tool schemas need a dozen levels). Deeper bodies are
 * refused before anything walks them recursively: JSON.stringify of a 100,000-deep array,
 * which JSON.parse reads happily, overflows the stack.
 */
export const MAX_BODY_DEPTH = 100;

/** Whether objects and arrays nest deeper than `max` (walked without recursion). */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v as object)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** Check an already-parsed body (e.g. from a WebSocket message). Throws RequestBodyError. */
export function checkRequestBody(endpoint: PaidEndpoint, json: unknown): RequestBody {
  if (nestedDeeperThan(json, MAX_BODY_DEPTH)) {
    throw new RequestBodyError('invalid_body', `request body nests deeper than ${MAX_BODY_DEPTH} levels`);
  }
  const r = REQUEST_SCHEMAS[endpoint].safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue?.path.join('.') ?? '';
    throw new RequestBodyError('invalid_body', `${path ? `${path}: ` : ''}${issue?.message ?? 'invalid request body'}`, path || undefined);
  }
  return r.data;
}

/** Whether the client asked for a stream. */
export function isStreaming(body: { stream?: boolean | null }): boolean {
  return body.stream === true;
}

/**
 * The body as sent to the provider: a streamed chat always asks for the usage chunk
 * (`stream_options.include_usage`), which the node needs to bill - without usage a streamed
 * X-Cashu answer keeps the whole token (ROUTSTR.md section 3). Other fields are untouched.
 */
export function withUsageRequested<T extends Record<string, unknown>>(endpoint: PaidEndpoint, body: T): T {
  if (endpoint !== '/v1/chat/completions' || body.stream !== true) return body;
  const current = body.stream_options;
  const opts = typeof current === 'object' && current !== null && !Array.isArray(current) ? (current as Record<string, unknown>) : {};
  if (opts.include_usage === true) return body;
  return { ...body, stream_options: { ...opts, include_usage: true } };
}

// ---- answers --------------------------------------------------------------------------

const ChatCompletionSchema = z.looseObject({ choices: z.array(z.looseObject({})) });
const EmbeddingsAnswerSchema = z.looseObject({ data: z.array(z.looseObject({})) });
const ResponsesAnswerSchema = z.looseObject({ output: z.array(z.unknown()) });
const MessagesAnswerSchema = z.looseObject({ content: z.array(z.unknown()) });

const ANSWER_SCHEMAS = {
  '/v1/chat/completions': ChatCompletionSchema,
  '/v1/embeddings': EmbeddingsAnswerSchema,
  '/v1/responses': ResponsesAnswerSchema,
  '/v1/messages': MessagesAnswerSchema,
} as const;

/** Why a 200 body is not an answer for `endpoint` (null: it is one). */
export function answerShapeProblem(endpoint: PaidEndpoint, body: unknown): string | null {
  const r = ANSWER_SCHEMAS[endpoint].safeParse(body);
  if (r.success) return null;
  const issue = r.error.issues[0];
  return `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'unexpected shape'}`;
}

/**
 * Why one streamed data chunk is not a chunk of `endpoint`'s stream (null: it is one). Chat
 * chunks carry a `choices` array (the usage chunk an empty one); Responses and Anthropic events
 * a `type`. Error chunks and the balance mode's `event: cost` are told apart before this.
 */
export function chunkShapeProblem(endpoint: PaidEndpoint, chunk: unknown): string | null {
  if (typeof chunk !== 'object' || chunk === null || Array.isArray(chunk)) return 'not an object';
  const c = chunk as Record<string, unknown>;
  if (endpoint === '/v1/chat/completions') return Array.isArray(c.choices) ? null : 'choices: not an array';
  if (endpoint === '/v1/responses' || endpoint === '/v1/messages') return typeof c.type === 'string' ? null : 'type: not a string';
  return null;
}

/** The `error` object of an OpenAI-style error or stream chunk, if it carries one. */
export function errorObjectOf(body: unknown): Record<string, unknown> | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const e = (body as { error?: unknown }).error;
  return typeof e === 'object' && e !== null && !Array.isArray(e) ? (e as Record<string, unknown>) : undefined;
}
