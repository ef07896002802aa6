// The paid endpoints (/v1/chat/completions, /v1/embeddings) in X-Cashu mode, as
// routstr-core v0.4.5 serves them: reserve check, redeem the whole token, fake upstream,
// charge, change in the X-Cashu response header, refunds on upstream failure.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { getTokenMetadata } from '@cashu/cashu-ts';
import { chatReply, embeddingOf, embeddingTokensOf, promptTokensOf, replyPieces } from './content.ts';
import { BodyError, detailBody, errorBody, readBody, sendJson, sleep } from './http.ts';
import {
  changeFor,
  chargeMsat,
  costHeaders,
  costObject,
  hasTokenPrices,
  maxCompletionTokens,
  requiredMsat,
  ZERO_COST,
  type Cost,
} from './pricing.ts';
import { normalizeMint, RedeemError, type Purse, type Redeemed } from './purse.ts';
import type { RefundBook } from './refunds.ts';
import type { ModelSpec, ProviderKnobs } from './types.ts';

export interface PaidContext {
  name: string;
  knobs: ProviderKnobs;
  findModel(id: string): ModelSpec | undefined;
  purse: Purse;
  refunds: RefundBook;
  random: () => number;
  clock: () => number;
  usdPerSat: number;
  /** Whether a paid request is admitted by the rate-limit knob. */
  admit(): boolean;
  /** Keep a response open for ever (the timeout knob); it is destroyed on stop. */
  hang(res: ServerResponse): void;
  /** Value kept (msat) and change/refunds issued (msat). */
  book(keptMsat: number, refundedMsat: number): void;
  onRedeemed(): void;
  /** An unexpected error after redemption (the request is answered 500, nothing refunded). */
  report(err: unknown): void;
}

type Endpoint = 'chat' | 'embeddings';

const toMsat = (amount: number, unit: string) => (unit === 'msat' ? amount : amount * 1000);

/** Handle one paid request; returns the status sent (0 when the response hangs or the socket is dropped). */
export async function handlePaid(ctx: PaidContext, endpoint: Endpoint, req: IncomingMessage, res: ServerResponse, requestId: string, base: Record<string, string>): Promise<number> {
  const k = ctx.knobs;
  let body: Record<string, unknown>;
  try {
    const parsed = JSON.parse(await readBody(req)) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    body = parsed as Record<string, unknown>;
  } catch (err) {
    const status = err instanceof BodyError ? err.status : 400;
    sendJson(res, status, errorBody('invalid_request_error', 'Invalid JSON in request body', status, requestId), base);
    return status;
  }
  const modelId = typeof body.model === 'string' ? body.model : 'unknown';
  const model = ctx.findModel(modelId);
  if (!model) {
    sendJson(res, 400, errorBody('invalid_model', `Model '${modelId}' not found`, 400, requestId), base);
    return 400;
  }
  if (k.rateLimit && !ctx.admit()) {
    sendJson(res, 429, errorBody('rate_limit_exceeded', 'Rate limit exceeded', 429, requestId), { ...base, 'Retry-After': String(k.rateLimit.retryAfterSec) });
    return 429;
  }

  // check_token_balance: before anything is redeemed.
  const token = req.headers['x-cashu'];
  if (typeof token !== 'string' || token === '' || token.startsWith('sk-')) {
    sendJson(res, 401, detailBody('Unauthorized', requestId), base);
    return 401;
  }
  let meta: ReturnType<typeof getTokenMetadata>;
  try {
    meta = getTokenMetadata(token);
  } catch {
    sendJson(res, 401, detailBody('Invalid authentication token format', requestId), base);
    return 401;
  }
  const required = requiredMsat(model, body);
  const faceMsat = toMsat(meta.amount.toNumber(), meta.unit ?? 'sat');
  if (faceMsat < required) {
    const status = k.use413 ? 413 : 402;
    const detail = { reason: 'Insufficient balance', amount_required_msat: required, model: modelId, type: 'minimum_balance_required' };
    sendJson(res, status, detailBody(detail, requestId), base);
    return status;
  }
  const accepted = new Set(k.acceptedMints.map(normalizeMint));
  if (!accepted.has(normalizeMint(meta.mint))) {
    // routstr tries a Lightning swap from a foreign mint; this simulation's swap always fails.
    sendJson(res, 422, errorBody('mint_error', 'Failed to swap token from foreign mint', 'cashu_foreign_mint_swap_failed', requestId), { ...base, 'X-Cashu': token });
    return 422;
  }

  let paid: Redeemed;
  try {
    paid = await ctx.purse.redeem(token);
  } catch (err) {
    if (err instanceof RedeemError) {
      const echo: Record<string, string> = err.unspent ? { 'X-Cashu': token } : {};
      sendJson(res, err.status, errorBody(err.type, err.message, err.code, requestId), { ...base, ...echo });
      return err.status;
    }
    sendJson(res, 500, errorBody('api_error', 'Internal error during token redemption', 'internal_error', requestId), base);
    return 500;
  }
  ctx.onRedeemed();
  ctx.refunds.opened(token, requestId);
  const paidMsat = toMsat(paid.amount, paid.unit);

  await sleep(k.ttfbMs);
  if (k.timeout) {
    ctx.hang(res);
    return 0;
  }

  const internalError = (err?: unknown): number => {
    if (err !== undefined) ctx.report(err);
    ctx.refunds.closed(token);
    ctx.book(paidMsat, 0);
    sendJson(res, 500, errorBody('internal_error', 'An unexpected server error occurred', 500, requestId), base);
    return 500;
  };
  if (k.internalError500) return internalError();

  if (k.failureRate > 0 && ctx.random() < k.failureRate) {
    let refund: string;
    try {
      refund = await ctx.purse.issue(paid.mint, paid.unit, paid.amount);
    } catch (err) {
      return internalError(err);
    }
    ctx.refunds.minted(token, refund, paid.amount, paid.unit);
    ctx.book(0, paidMsat);
    const status = k.failureStatus;
    const errBody = { error: { message: 'Error forwarding request to upstream', type: 'upstream_error', code: status, refund_token: refund } };
    sendJson(res, status, errBody, { ...base, 'X-Cashu': refund });
    return status;
  }

  // The fake upstream's answer.
  const streaming = endpoint === 'chat' && body.stream === true;
  const maxTokensRaw = body.max_tokens ?? body.max_completion_tokens;
  const maxTokens = Number.isFinite(Number(maxTokensRaw)) && maxTokensRaw !== null ? Math.trunc(Number(maxTokensRaw)) : maxCompletionTokens(model);
  const reply = endpoint === 'chat' ? chatReply(ctx.name, body.messages, maxTokens, k.completionTokens) : undefined;
  const promptTokens = endpoint === 'chat' ? promptTokensOf(body.messages) : embeddingTokensOf(body.input);
  const completionTokens = reply?.completionTokens ?? 0;
  const usageReported = !k.noUsage;

  // The charge. No usage: non-streaming bills 0 (full refund), streaming keeps everything.
  let charged: Cost;
  let reported: Cost;
  if (!usageReported) {
    charged = reported = ZERO_COST;
  } else if (!hasTokenPrices(model)) {
    charged = reported = { baseMsat: required, inputMsat: 0, outputMsat: 0, totalMsat: required, totalUsd: 0 };
  } else {
    charged = chargeMsat(model, promptTokens, completionTokens, ctx.usdPerSat, k.overchargeFactor);
    reported = k.overchargeReports === 'honest' ? chargeMsat(model, promptTokens, completionTokens, ctx.usdPerSat, 1) : charged;
  }
  const keepsAll = streaming && !usageReported;
  const change = keepsAll ? 0 : changeFor(paid.amount, paid.unit, charged.totalMsat);
  let changeHeader: string | undefined;
  if (change > 0) {
    try {
      if (k.invalidChange === 'garbage') {
        changeHeader = `cashuBgarbage${randomBytes(12).toString('hex')}`;
      } else {
        changeHeader = await ctx.purse.issue(paid.mint, paid.unit, change);
        if (k.invalidChange === 'spent') await ctx.purse.respend(changeHeader);
      }
    } catch (err) {
      return internalError(err);
    }
    ctx.refunds.minted(token, changeHeader, change, paid.unit);
    const changeMsat = k.invalidChange ? 0 : toMsat(change, paid.unit);
    ctx.book(paidMsat - changeMsat, changeMsat);
  } else {
    ctx.refunds.closed(token);
    ctx.book(paidMsat, 0);
  }

  const created = Math.floor(ctx.clock() / 1000);
  const id = `chatcmpl-${requestId}`;
  const usage: Record<string, unknown> = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  const headers: Record<string, string> = { ...base };
  if (changeHeader) headers['X-Cashu'] = changeHeader;
  if (!keepsAll && !k.legacyCostField) Object.assign(headers, costHeaders(reported));
  // Where the cost goes: usage.cost (+ cost_sats) today, or an older field.
  const withCost = (obj: Record<string, unknown>): Record<string, unknown> => {
    if (!usageReported) return obj;
    const cost = costObject(reported);
    if (k.legacyCostField === 'top-level') obj.cost = cost;
    else if (k.legacyCostField === 'metadata') obj.metadata = { routstr: { cost } };
    else obj.usage = { ...usage, cost, cost_sats: Math.floor(reported.totalMsat / 1000) };
    return obj;
  };

  if (endpoint === 'embeddings') {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    const out: Record<string, unknown> = {
      object: 'list',
      data: inputs.map((text, index) => ({ object: 'embedding', index, embedding: embeddingOf(String(text ?? '')) })),
      model: model.id,
    };
    if (usageReported) out.usage = { prompt_tokens: promptTokens, total_tokens: promptTokens };
    sendJson(res, 200, withCost(out), headers);
    return 200;
  }

  if (!streaming) {
    const out: Record<string, unknown> = {
      id,
      object: 'chat.completion',
      created,
      model: model.id,
      choices: [{ index: 0, message: { role: 'assistant', content: reply!.content }, finish_reason: reply!.finishReason }],
      provider: ctx.name,
    };
    if (usageReported) out.usage = usage;
    sendJson(res, 200, withCost(out), headers);
    return 200;
  }

  // Streaming: routstr buffers the upstream stream, then replays it after the headers.
  const chunk = (choices: unknown[]) => ({ id, object: 'chat.completion.chunk', created, model: model.id, choices, provider: ctx.name });
  const events: unknown[] = replyPieces(reply!.content).map((content, i) =>
    chunk([{ index: 0, delta: i === 0 ? { role: 'assistant', content } : { content }, finish_reason: null }]),
  );
  events.push(chunk([{ index: 0, delta: {}, finish_reason: reply!.finishReason }]));
  if (usageReported) events.push(withCost({ ...chunk([]), usage }));
  const lines = events.map((e) => `data: ${JSON.stringify(e)}\n\n`);
  lines.push('data: [DONE]\n');
  res.writeHead(200, { ...headers, 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const drop = k.midStreamDrop;
  if (drop !== null && drop < lines.length) {
    const sent = lines.slice(0, Math.max(0, drop)).join('');
    res.write(sent, () => res.socket?.destroy());
    return 0;
  }
  res.end(lines.join(''));
  return 200;
}
