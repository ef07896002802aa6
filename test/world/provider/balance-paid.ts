// Paid requests in the balance (API-key) mode: `Authorization: Bearer sk-...` (or a cashu
// token, which becomes a key), as routstr-core v0.4.5 proxy.py and auth.py serve them:
// reserve the model's discounted max cost against the balance (402 insufficient_quota when
// short), forward to the fake upstream, charge what the X-Cashu path charges (pricing.ts),
// and release the reservation when the upstream fails or the client goes away.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { available, BalanceHttpError, errorDetail, validateBearer, type BalanceContext } from './balance-auth.ts';
import type { Reservation } from './balance-book.ts';
import { injectCost, pyJson, streamChat, streamMessages, type LiveStream, type Settled } from './balance-stream.ts';
import { chatReply, embeddingOf, embeddingTokensOf, promptTokensOf, replyPieces } from './content.ts';
import { BodyError, detailBody, readBody, sendJson } from './http.ts';
import { chargeMsat, costHeaders, hasTokenPrices, maxCompletionTokens, requiredMsat, type Cost } from './pricing.ts';
import type { ModelSpec } from './types.ts';

export type BalanceEndpoint = 'chat' | 'embeddings' | 'messages';

/** Paid paths the balance mode serves. */
export const BALANCE_PAID_PATHS: ReadonlyMap<string, BalanceEndpoint> = new Map([
  ['/v1/chat/completions', 'chat'],
  ['/v1/embeddings', 'embeddings'],
  ['/v1/messages', 'messages'],
]);

/** proxy.py: X-Cashu wins; otherwise an Authorization header means the balance mode. */
export function usesBalanceMode(req: IncomingMessage): boolean {
  return !req.headers['x-cashu'] && req.headers.authorization !== undefined;
}

/** A body re-serialised with Python's json.dumps, as routstr's Response(content=json.dumps(...)) sends it. */
function sendPy(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  const text = pyJson(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

type Phase = 'waiting' | 'streaming' | 'settled';

/** Handle one paid request with a bearer; returns the status sent (0 when it hangs or broke off). */
export async function handleBalancePaid(ctx: BalanceContext, endpoint: BalanceEndpoint, req: IncomingMessage, res: ServerResponse, requestId: string, base: Record<string, string>): Promise<number> {
  let body: Record<string, unknown>;
  try {
    const parsed = JSON.parse(await readBody(req)) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    body = parsed as Record<string, unknown>;
  } catch (err) {
    const status = err instanceof BodyError ? err.status : 400;
    sendJson(res, status, detailBody({ error: { type: 'invalid_request_error', code: 'invalid_json' } }, requestId), base);
    return status;
  }
  if ('max_tokens' in body && !Number.isInteger(body.max_tokens)) {
    sendJson(res, 400, detailBody({ error: 'max_tokens must be an integer' }, requestId), base);
    return 400;
  }
  const modelId = typeof body.model === 'string' ? body.model : 'unknown';
  const model = ctx.findModel(modelId);
  if (!model) {
    sendPy(res, 400, { error: { message: `Model '${modelId}' not found`, type: 'invalid_model', code: 400 }, request_id: requestId }, base);
    return 400;
  }
  const requiredMsatValue = Math.max(1, requiredMsat(model, body));

  // get_bearer_token_key, then pay_for_request.
  const auth = req.headers.authorization ?? '';
  const parts = auth.trim().split(/\s+/);
  const bearer = parts.length > 1 && parts[0].toLowerCase() === 'bearer' ? parts[1] : '';
  let reservation: Reservation;
  try {
    const key = await validateBearer(ctx, bearer, requiredMsatValue);
    const r = ctx.balances.reserve(key.hash, requiredMsatValue, ctx.clock());
    if (!r) {
      const message = `Insufficient balance: ${requiredMsatValue} mSats required. ${available(key)} available. (reserved: ${key.reservedMsat})`;
      throw new BalanceHttpError(402, errorDetail(message, 'insufficient_quota', 'insufficient_balance'));
    }
    reservation = r;
  } catch (err) {
    if (!(err instanceof BalanceHttpError)) throw err;
    sendJson(res, err.status, detailBody(err.detail, requestId), base);
    return err.status;
  }

  // A client gone before the answer starts: proxy.py reverts the reservation. Gone in the
  // middle of a stream: the generator's finally settles it with no usage (a zero charge).
  if (res.destroyed) {
    // Gone while the bearer was being checked.
    ctx.balances.release(reservation, true);
    return 0;
  }
  let phase: Phase = 'waiting';
  let gone = false;
  res.on('close', () => {
    gone = !res.writableFinished;
    if (phase === 'waiting') ctx.balances.release(reservation, true);
    else if (phase === 'streaming') ctx.balances.charge(reservation, 0);
  });

  const k = ctx.knobs;
  await ctx.delay(k.ttfbMs);
  if (gone) return 0;
  if (k.timeout) {
    ctx.hang(res);
    return 0;
  }
  const failure = upstreamFailure(ctx, model);
  if (failure) {
    phase = 'settled';
    ctx.balances.release(reservation, true);
    sendPy(res, failure.status, failure.status >= 500 ? { ...(failure.body as object), request_id: requestId } : failure.body, { ...base, ...failure.headers });
    return failure.status;
  }

  const maxTokensRaw = body.max_tokens ?? body.max_completion_tokens;
  const maxTokens = Number.isFinite(Number(maxTokensRaw)) && maxTokensRaw !== null ? Math.trunc(Number(maxTokensRaw)) : maxCompletionTokens(model);
  const reply = chatReply(ctx.name, body.messages, maxTokens, k.completionTokens);
  const promptTokens = endpoint === 'embeddings' ? embeddingTokensOf(body.input) : promptTokensOf(body.messages);
  const completionTokens = endpoint === 'embeddings' ? 0 : reply.completionTokens;

  const settle = (usage: { input: number; output: number } | null): Settled => {
    phase = 'settled';
    const s = settleCost(ctx, model, reservation, usage, requiredMsatValue);
    ctx.book(s.takenMsat, 0);
    return s;
  };

  if (body.stream === true && endpoint !== 'embeddings') {
    phase = 'streaming';
    const stream: LiveStream = {
      res,
      headers: base,
      delay: ctx.delay,
      chunkDelayMs: k.chunkDelayMs,
      dropAfter: k.midStreamDrop,
      endlessMs: k.endlessMs,
      provider: ctx.name,
      modelId: model.id,
      id: `chatcmpl-${requestId}`,
      createdSec: Math.floor(ctx.clock() / 1000),
      reply,
      promptTokens,
      usageReported: !k.noUsage,
      legacy: k.legacyCostField,
      gone: () => gone,
      settle,
      abort: () => {
        phase = 'settled';
        ctx.balances.charge(reservation, 0);
      },
    };
    return endpoint === 'messages' ? streamMessages(stream) : streamChat(stream);
  }

  // Non-streaming: the upstream answers once it has made every chunk, all at once.
  await ctx.delay(k.chunkDelayMs * (endpoint === 'embeddings' ? 1 : replyPieces(reply.content).length + 1));
  if (gone) return 0;
  const usageOn = !k.noUsage;
  const settled = settle(usageOn ? { input: promptTokens, output: completionTokens } : null);
  const headers = { ...base, ...costHeaders(asCost(settled.cost)) };
  const created = Math.floor(ctx.clock() / 1000);
  if (endpoint === 'messages') {
    const out: Record<string, unknown> = {
      id: `msg_${requestId}`,
      type: 'message',
      role: 'assistant',
      model: model.id,
      content: [{ type: 'text', text: reply.content }],
      stop_reason: reply.finishReason === 'length' ? 'max_tokens' : 'end_turn',
      stop_sequence: null,
    };
    if (usageOn) out.usage = { input_tokens: promptTokens, output_tokens: completionTokens };
    injectCost(out, settled, ctx.name, k.legacyCostField);
    sendPy(res, 200, out, headers);
    return 200;
  }
  let out: Record<string, unknown>;
  if (endpoint === 'embeddings') {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    out = { object: 'list', data: inputs.map((text, index) => ({ object: 'embedding', index, embedding: embeddingOf(String(text ?? '')) })), model: model.id, provider: ctx.name };
    if (usageOn) out.usage = { prompt_tokens: promptTokens, total_tokens: promptTokens };
  } else {
    out = {
      id: `chatcmpl-${requestId}`,
      object: 'chat.completion',
      created,
      model: model.id,
      choices: [{ index: 0, message: { role: 'assistant', content: reply.content }, finish_reason: reply.finishReason }],
      provider: ctx.name,
    };
    if (usageOn) out.usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  }
  injectNonStreaming(out, settled, k.legacyCostField);
  sendPy(res, 200, out, headers);
  return 200;
}

/** An upstream error after the reservation (the knobs that make one), or null. */
function upstreamFailure(ctx: BalanceContext, model: ModelSpec): { status: number; body: unknown; headers: Record<string, string> } | null {
  const k = ctx.knobs;
  if (k.internalError500) {
    // forward_request's catch-all: UpstreamError("An unexpected server error occurred", 500).
    return { status: 500, body: { error: { message: 'An unexpected server error occurred', type: 'upstream_error', code: 500 } }, headers: {} };
  }
  // The same upstream misbehaviour as the X-Cashu path (provider/faults.ts: upstreamError,
  // rateLimit, failureRate), answered the way the API-key branch answers it.
  const status = ctx.faults.failure(model.id);
  if (status === 429) {
    // forward_upstream_error_response: the upstream's 429 body with code UPSTREAM_RATE_LIMIT, its Retry-After kept.
    const message = 'Rate limit exceeded';
    const retryAfter = k.rateLimit?.retryAfterSec;
    return {
      status: 429,
      body: { error: { message, type: 'rate_limit_exceeded', code: 'UPSTREAM_RATE_LIMIT', details: { code: 'UPSTREAM_RATE_LIMIT', message, retry_after_seconds: retryAfter ?? null } } },
      headers: retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) },
    };
  }
  if (status !== null) {
    const upstreamBody = { error: { message: `Upstream returned ${status}`, type: 'upstream_error', code: status } };
    if (status >= 500) {
      // UpstreamError -> create_upstream_error_response.
      const message = `Upstream ${ctx.name} returned ${status} for model ${model.id}: ${JSON.stringify(upstreamBody).slice(0, 200)}`;
      return { status, body: { error: { message, type: 'upstream_error', code: status } }, headers: {} };
    }
    // 4xx: the upstream's JSON error passed through.
    return { status, body: upstreamBody, headers: {} };
  }
  return null;
}

interface SettledCost extends Settled {
  takenMsat: number;
}

/** adjust_payment_for_tokens: the charge (same formula as X-Cashu), taken from the reservation. */
function settleCost(ctx: BalanceContext, model: ModelSpec, r: Reservation, usage: { input: number; output: number } | null, reservedMsat: number): SettledCost {
  const k = ctx.knobs;
  let charged: Cost;
  let reported: Cost;
  if (!usage) {
    // calculate_cost: no usage -> MaxCostData with zero cost.
    charged = reported = { baseMsat: 0, inputMsat: 0, outputMsat: 0, totalMsat: 0, totalUsd: 0 };
  } else if (!hasTokenPrices(model)) {
    charged = reported = { baseMsat: reservedMsat, inputMsat: 0, outputMsat: 0, totalMsat: reservedMsat, totalUsd: 0 };
  } else {
    charged = chargeMsat(model, usage.input, usage.output, ctx.usdPerSat, k.overchargeFactor);
    reported = k.overchargeReports === 'honest' ? chargeMsat(model, usage.input, usage.output, ctx.usdPerSat, 1) : charged;
  }
  const taken = ctx.balances.charge(r, charged.totalMsat);
  // An overrun is capped at the balance, and the cost says what was taken.
  const totalMsat = taken !== undefined && reported === charged ? taken : reported.totalMsat;
  const cost = {
    base_msats: reported.baseMsat,
    input_msats: reported.inputMsat,
    output_msats: reported.outputMsat,
    total_msats: totalMsat,
    total_usd: reported.totalUsd,
    input_tokens: usage?.input ?? 0,
    output_tokens: usage?.output ?? 0,
    cache_read_input_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_msats: 0,
    cache_creation_msats: 0,
  };
  return { cost, remainingMsat: ctx.balances.get(r.keyHash)?.balanceMsat ?? 0, takenMsat: taken ?? 0 };
}

const asCost = (c: Record<string, number>): Cost => ({ baseMsat: c.base_msats, inputMsat: c.input_msats, outputMsat: c.output_msats, totalMsat: c.total_msats, totalUsd: c.total_usd });

/** handle_non_streaming_chat_completion (also embeddings): usage.cost, metadata.routstr.cost and cost. */
function injectNonStreaming(out: Record<string, unknown>, s: Settled, legacy: 'top-level' | 'metadata' | null): void {
  const provider = out.provider as string;
  injectCost(out, s, provider, null);
  // Here metadata.routstr holds only the cost, which carries sats_cost and the balance.
  const cost = out.cost as Record<string, number>;
  out.metadata = { routstr: { cost } };
  if (legacy === 'top-level') delete out.metadata;
  if (legacy) {
    const usage = out.usage as Record<string, unknown> | undefined;
    if (usage) {
      delete usage.cost;
      delete usage.cost_sats;
    }
    if (legacy === 'metadata') delete out.cost;
  }
}
