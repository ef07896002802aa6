// The WebSocket API's messages (DESIGN.md "Interfaces", WebSocket): what a client may send,
// parsed with zod at the edge, and what the daemon sends back, built in one place so every
// field name is written once. A client message that cannot be used becomes an error for that
// message only (the connection lives); a `request` whose own fields are wrong still names its
// `id`, so the client's request ends with that error.
import { z } from 'zod';
import { checkRequestBody, PAID_ENDPOINTS, RequestBodyError, type PaidEndpoint, type RequestBody } from '../../protocol/openai.ts';
import type { Policy } from '../route/estimate.ts';
import type { Accepted, DaemonEvent, Done, PaymentModeChoice } from '../requests/contract.ts';
import { BadRequestError, wsErrorMessage, type ApiError } from './errors.ts';

export const TOPICS = ['payments', 'providers'] as const;
export type Topic = (typeof TOPICS)[number];

const POLICIES = ['cheapest', 'balanced'] as const satisfies readonly Policy[];
// Fails to compile when route/estimate.ts gains a policy this list does not know.
const _everyPolicy: readonly (typeof POLICIES)[number][] = [] as Policy[];
void _everyPolicy;

const Id = z.string().min(1).max(128);

const AuthMessage = z.strictObject({ type: z.literal('auth'), key: z.string().max(256) });

// Strict: a misspelt `max_sats` must not silently drop the caller's spending cap.
const RequestMessage = z.strictObject({
  type: z.literal('request'),
  id: Id,
  endpoint: z.enum(PAID_ENDPOINTS),
  body: z.unknown(),
  max_sats: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
  policy: z.enum(POLICIES).optional(),
  provider: z.string().min(1).max(512).optional(),
  payment: z.enum(['xcashu', 'session']).optional(),
  explain: z.boolean().optional(),
});

const CancelMessage = z.strictObject({ type: z.literal('cancel'), id: Id });
const SubscribeMessage = z.strictObject({ type: z.literal('subscribe'), topics: z.array(z.enum(TOPICS)).min(1).max(TOPICS.length) });
const PingMessage = z.strictObject({ type: z.literal('ping') });

const SCHEMAS = { auth: AuthMessage, request: RequestMessage, cancel: CancelMessage, subscribe: SubscribeMessage, ping: PingMessage } as const;
const TYPES = Object.keys(SCHEMAS) as (keyof typeof SCHEMAS)[];

/** A client's `request`, its body checked for its endpoint. */
export interface RequestMsg {
  type: 'request';
  id: string;
  endpoint: PaidEndpoint;
  body: RequestBody;
  maxSats?: number;
  policy?: Policy;
  provider?: string;
  payment?: PaymentModeChoice;
  explain?: boolean;
}

export type ClientMessage =
  | { type: 'auth'; key: string }
  | RequestMsg
  | { type: 'cancel'; id: string }
  | { type: 'subscribe'; topics: Topic[] }
  | { type: 'ping' };

export type ParsedMessage =
  | { ok: true; message: ClientMessage }
  /** `id`: the request id the error answers, when the message was a `request` naming a usable one. */
  | { ok: false; type: string | null; id: string | null; error: unknown };

/** Parse one client message (text). Never throws. */
export function parseClientMessage(text: string): ParsedMessage {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, type: null, id: null, error: new BadRequestError('message is not valid JSON') };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, type: null, id: null, error: new BadRequestError('message must be a JSON object with a "type"') };
  }
  const type = (json as { type?: unknown }).type;
  const rawId = (json as { id?: unknown }).id;
  const id = type === 'request' && Id.safeParse(rawId).success ? (rawId as string) : null;
  if (typeof type !== 'string' || !Object.hasOwn(SCHEMAS, type)) {
    const named = typeof type === 'string' ? `unknown message type "${type.slice(0, 40)}"` : 'message has no "type"';
    return { ok: false, type: null, id: null, error: new BadRequestError(`${named}; expected one of: ${TYPES.join(', ')}`) };
  }
  const parsed = SCHEMAS[type as keyof typeof SCHEMAS].safeParse(json);
  if (!parsed.success) return { ok: false, type, id, error: parsed.error };
  const m = parsed.data;
  if (m.type !== 'request') return { ok: true, message: m };
  let body: RequestBody;
  try {
    body = checkRequestBody(m.endpoint, m.body);
  } catch (err) {
    if (err instanceof RequestBodyError) return { ok: false, type, id, error: new BadRequestError(`invalid body for ${m.endpoint}: ${err.message}`) };
    throw err;
  }
  return {
    ok: true,
    message: {
      type: 'request', id: m.id, endpoint: m.endpoint, body,
      ...(m.max_sats !== undefined ? { maxSats: m.max_sats } : {}),
      ...(m.policy !== undefined ? { policy: m.policy } : {}),
      ...(m.provider !== undefined ? { provider: m.provider } : {}),
      ...(m.payment !== undefined ? { payment: m.payment } : {}),
      ...(m.explain !== undefined ? { explain: m.explain } : {}),
    },
  };
}

/** The `id` of a `request` message, read from its JSON without checking the rest (oversized messages). */
export function requestIdOf(text: string): string | null {
  try {
    const json = JSON.parse(text) as { type?: unknown; id?: unknown } | null;
    return json?.type === 'request' && Id.safeParse(json.id).success ? (json.id as string) : null;
  } catch {
    return null;
  }
}

// ---- what the daemon sends (serialised once, here) --------------------------------------------

const text = (m: Record<string, unknown>): string => JSON.stringify(m);

export function acceptedMessage(id: string, a: Accepted): string {
  return text({
    type: 'accepted', id, provider: a.provider, model: a.model, reserved_sats: a.reservedSats, request_id: a.requestId,
    ...(a.explain ? { explain: a.explain } : {}),
  });
}

export function chunkMessage(id: string, data: unknown, event?: string): string {
  return text({ type: 'chunk', id, data, ...(event !== undefined ? { event } : {}) });
}

export function responseMessage(id: string, data: unknown): string {
  return text({ type: 'response', id, data });
}

export function doneMessage(id: string, d: Done): string {
  return text({ type: 'done', id, request_id: d.requestId, provider: d.provider, usage: d.usage, cost: d.cost, flags: d.flags });
}

/** `request_id` is added when the daemon had already named the request (after `accepted`). */
export function errorMessage(id: string | null, e: ApiError, requestId?: string): string {
  return text({ ...wsErrorMessage(id, e), ...(requestId !== undefined ? { request_id: requestId } : {}) });
}

export function eventMessage(e: DaemonEvent): string {
  return text({ type: 'event', ...e });
}

/** Sent before the next event a slow reader can take: how many of that topic's events it missed. */
export function droppedMessage(topic: Topic, dropped: number): string {
  return text({ type: 'event', topic, dropped });
}

export const PONG = text({ type: 'pong' });
