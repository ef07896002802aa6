// The paid endpoints (/v1/chat/completions, /v1/embeddings, /v1/responses, /v1/messages) in
// X-Cashu mode, as routstr-core v0.4.5 serves them (proxy.py, upstream/base.py handle_x_cashu):
// the reserve check on the token's face value, redemption of the whole token, the fake upstream
// (which may fail after redemption: full refund), the charge, change in the X-Cashu header.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { getTokenMetadata } from '@cashu/cashu-ts';
import { BodyError, detailBody, elapse, errorBody, readBody, sendJson, sendPyJson, sleep } from './http.ts';
import type { UpstreamFaults } from './faults.ts';
import {
  changeFor,
  chargeMsat,
  costHeaders,
  hasTokenPrices,
  requiredMsat,
  upstreamUsd,
  usdChargeMsat,
  ZERO_COST,
  type Cost,
} from './pricing.ts';
import { altersBody, badCostHeader, hostileWriter, issueChange, mangle, reportedCount } from './hostile.ts';
import { RedeemError, type Purse, type Redeemed } from './purse.ts';
import { redeemToken, redemptionFailure } from './redeem.ts';
import type { RefundBook } from './refunds.ts';
import { nodeJsonBody, nodeResponsesSse, nodeSse, sendWithStaleLength, staleLength } from './respond.ts';
import type { ModelSpec, ProviderKnobs } from './types.ts';
import { upstreamAnswer, UpstreamRefusal, type Endpoint, type UpstreamAnswer } from './upstream.ts';
import type { VersionBehaviour } from './version.ts';

export type { Endpoint } from './upstream.ts';

export interface PaidContext {
  name: string;
  knobs: ProviderKnobs;
  behaviour(): VersionBehaviour;
  findModel(id: string): ModelSpec | undefined;
  /** Multiply a model's listed prices (the priceChange knob). */
  reprice(modelId: string, factor: number): void;
  purse: Purse;
  refunds: RefundBook;
  faults: UpstreamFaults;
  clock: () => number;
  /** USD per sat the listed prices were computed with. */
  usdPerSat: number;
  /** Keep a response open for ever (the timeout knob); it is destroyed on stop. */
  hang(res: ServerResponse): void;
  /** Value kept (msat) and change/refunds issued (msat). */
  book(keptMsat: number, refundedMsat: number): void;
  onRedeemed(): void;
  /** An unexpected error after redemption (the request is answered 500, nothing refunded). */
  report(err: unknown): void;
  /** The fake upstream's waits (the chunkDelayMs knob); default a timer. */
  delay?: (ms: number) => Promise<void>;
}

const toMsat = (amount: number, unit: string) => (unit === 'msat' ? amount : amount * 1000);

/** extract_model_from_responses_request: `model`, or `input.model`. */
function requestedModel(endpoint: Endpoint, body: Record<string, unknown>): string {
  if (typeof body.model === 'string' && body.model) return body.model;
  const input = body.input as { model?: unknown } | undefined;
  if (endpoint === 'responses' && input && typeof input === 'object' && typeof input.model === 'string') return input.model;
  return 'unknown';
}

/** Handle one paid request; returns the status sent (0 when the response hangs or the socket is dropped). */
export async function handlePaid(ctx: PaidContext, endpoint: Endpoint, req: IncomingMessage, res: ServerResponse, requestId: string, base: Record<string, string>): Promise<number> {
  const k = ctx.knobs;
  let body: Record<string, unknown>;
  try {
    const parsed = JSON.parse(await readBody(req)) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    body = parsed as Record<string, unknown>;
  } catch (err) {
    // parse_request_body_json's HTTPException; the size limit is this simulation's own.
    if (err instanceof BodyError) {
      sendJson(res, err.status, detailBody(err.message, requestId), base);
      return err.status;
    }
    sendJson(res, 400, detailBody({ error: { type: 'invalid_request_error', code: 'invalid_json' } }, requestId), base);
    return 400;
  }
  const modelId = requestedModel(endpoint, body);
  let model = ctx.findModel(modelId);
  if (!model) {
    sendPyJson(res, 400, errorBody('invalid_model', `Model '${modelId}' not found`, 400, requestId), base);
    return 400;
  }
  // The node re-lists its prices every ~2 minutes: this request meets the new ones.
  const factor = ctx.faults.priceChangeDue();
  if (factor !== null) {
    ctx.reprice(model.id, factor);
    model = ctx.findModel(modelId)!;
  }

  // check_token_balance: before anything is redeemed, against the token's face value.
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
  if (toMsat(meta.amount.toNumber(), meta.unit ?? 'sat') < required) {
    const status = k.use413 ? 413 : ctx.behaviour().underpaidStatus;
    const detail = { reason: 'Insufficient balance', amount_required_msat: required, model: modelId, type: 'minimum_balance_required' };
    sendJson(res, status, detailBody(detail, requestId), base);
    return status;
  }

  let paid: Redeemed;
  try {
    paid = await redeemToken(ctx.purse, k, token);
  } catch (err) {
    const failure = err instanceof RedeemError ? redemptionFailure(err, ctx.behaviour(), requestId) : { status: 500, body: errorBody('api_error', 'Internal error during token redemption', 'internal_error', requestId), echo: false };
    sendPyJson(res, failure.status, failure.body, { ...base, ...(failure.echo ? { 'X-Cashu': token } : {}) });
    return failure.status;
  }
  ctx.onRedeemed();
  // store_cashu_transaction: until the "in" row exists, the refund endpoint does not know the token.
  await elapse(ctx.clock, k.refundRecordDelayMs);
  ctx.refunds.opened(token, requestId);
  const paidMsat = toMsat(paid.amount, paid.unit);

  await sleep(k.ttfbMs);
  if (k.timeout) {
    ctx.hang(res);
    return 0;
  }
  // An exception after redemption: create_error_response internal_error, nothing refunded.
  const internalError = (err?: unknown): number => {
    if (err !== undefined) ctx.report(err);
    ctx.refunds.closed(token);
    ctx.book(paidMsat, 0);
    sendPyJson(res, 500, errorBody('internal_error', 'An unexpected server error occurred', 500, requestId), base);
    return 500;
  };
  if (k.internalError500) return internalError();

  let answer: UpstreamAnswer | undefined;
  let failed = ctx.faults.failure(modelId);
  if (failed === null) {
    try {
      answer = upstreamAnswer({ endpoint, body, model, provider: ctx.name, requestId, createdSec: Math.floor(ctx.clock() / 1000), forcedTokens: k.completionTokens });
    } catch (err) {
      if (!(err instanceof UpstreamRefusal)) throw err;
      failed = err.status;
    }
  }
  if (failed !== null || !answer) {
    // Any non-200 from the upstream: the whole amount back, status passed through.
    let refund: string;
    try {
      refund = await ctx.purse.issue(paid.mint, paid.unit, paid.amount);
    } catch (err) {
      return internalError(err);
    }
    ctx.refunds.minted(token, refund, paid.amount, paid.unit, paid.mint);
    ctx.book(0, paidMsat);
    const status = failed ?? 502;
    const message = endpoint === 'responses' ? 'Error forwarding Responses API request to upstream' : 'Error forwarding request to upstream';
    sendPyJson(res, status, { error: { message, type: 'upstream_error', code: status, refund_token: refund } }, { ...base, 'X-Cashu': refund });
    return status;
  }

  // The charge. No usage: non-streaming bills 0 (full refund), streaming keeps everything; a
  // streamed Responses answer never yields its usage (the v0.4.5 parsing bug), so the same.
  const reportsUsage = !k.noUsage;
  const usdNow = ctx.usdPerSat / (1 + k.usdDrift);
  const usd = k.usdCost ? upstreamUsd(model, answer.promptTokens, answer.completionTokens, ctx.usdPerSat, k.overchargeFactor) : null;
  const costAt = (factor: number, promptTokens: number, completionTokens: number): Cost => {
    if (!reportsUsage) return ZERO_COST;
    if (usd && usd.costUsd > 0) {
      if (promptTokens === 0 && completionTokens === 0) return ZERO_COST;
      const real = factor === k.overchargeFactor && promptTokens === answer!.promptTokens && completionTokens === answer!.completionTokens;
      return usdChargeMsat(real ? usd : upstreamUsd(model!, promptTokens, completionTokens, ctx.usdPerSat, factor), usdNow);
    }
    if (!hasTokenPrices(model!)) return { baseMsat: required, inputMsat: 0, outputMsat: 0, totalMsat: required, totalUsd: 0 };
    return chargeMsat(model!, promptTokens, completionTokens, usdNow, factor);
  };
  const charged = costAt(k.overchargeFactor, answer.promptTokens, answer.completionTokens);
  // 'honest': the cost of the tokens it reports (a hostile node may report fewer than it bills).
  const reported = k.overchargeReports === 'honest' ? costAt(1, reportedCount(answer.promptTokens, k), reportedCount(answer.completionTokens, k)) : charged;
  const buggyStream = answer.streaming && endpoint === 'responses';
  const keepsAll = (answer.streaming && !reportsUsage) || buggyStream;
  const owed = keepsAll ? 0 : changeFor(paid.amount, paid.unit, charged.totalMsat);
  let changeHeader: string | undefined;
  let change = owed;
  let changeMint = paid.mint;
  if (owed > 0 || k.changeSurplus > 0) {
    try {
      if (k.invalidChange === 'garbage') {
        changeHeader = `cashuBgarbage${randomBytes(12).toString('hex')}`;
      } else {
        const issued = await issueChange(ctx.purse, paid, owed, k);
        if (issued) {
          ({ token: changeHeader, amount: change, mint: changeMint } = issued);
          if (k.invalidChange === 'spent') await ctx.purse.respend(changeHeader, changeMint, paid.unit);
        }
      }
    } catch (err) {
      return internalError(err);
    }
  }
  if (changeHeader) {
    ctx.refunds.minted(token, changeHeader, change, paid.unit, changeMint);
    const changeMsat = k.invalidChange ? 0 : toMsat(change, paid.unit);
    ctx.book(paidMsat - changeMsat, changeMsat);
  } else {
    ctx.refunds.closed(token);
    ctx.book(paidMsat, 0);
  }

  const headers: Record<string, string> = { ...base };
  if (changeHeader) headers['X-Cashu'] = changeHeader;
  // Cost headers whenever the node computed a cost: always when not streaming (zeros without
  // usage), only when it found usage in a stream.
  if (!k.legacyCostField && (!answer.streaming || !keepsAll)) Object.assign(headers, costHeaders(reported));
  if (k.badUsage && headers['X-Routstr-Cost-Msats'] !== undefined) headers['X-Routstr-Cost-Msats'] = badCostHeader(k.badUsage, reported.totalMsat);
  const usage = reportsUsage ? { usd } : null;
  const cost = reportsUsage ? reported : null;
  const finish = altersBody(k) ? (obj: Record<string, unknown>) => mangle(obj, k) : undefined;
  const hostile = hostileWriter(k);

  if (!answer.streaming) {
    const upstream = answer.json(usage);
    const text = nodeJsonBody(upstream, ctx.name, cost, k.legacyCostField, finish);
    if (hostile) {
      hostile(res, { streaming: false, headers, text, hang: ctx.hang });
      return 200;
    }
    if (k.staleContentLength) {
      sendWithStaleLength(res, 200, text, staleLength(k.staleContentLength, upstream, Buffer.byteLength(text)), headers);
      return 200;
    }
    res.writeHead(200, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
    res.end(text);
    return 200;
  }

  // Streaming: the node buffered the whole upstream stream; it replays it after the headers.
  // (handle_x_cashu reads the upstream to its end first: every chunk delay passes before the headers.)
  const sse = buggyStream ? nodeResponsesSse(answer.sse(usage)) : nodeSse(answer.sse(usage), ctx.name, keepsAll ? null : cost, k.legacyCostField, finish);
  if (hostile) {
    hostile(res, { streaming: true, headers, text: sse, hang: ctx.hang });
    return 200;
  }
  if (k.chunkDelayMs > 0 && ctx.delay) {
    await ctx.delay(k.chunkDelayMs * (sse.match(/^data: /gm)?.length ?? 1));
    if (res.destroyed) return 0;
  }
  res.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  const drop = k.midStreamDrop;
  if (drop !== null) {
    const lines = sse.split(/(?<=\n)/);
    let dataLines = 0;
    const cut = lines.findIndex((l) => l.startsWith('data: ') && ++dataLines > drop);
    if (cut >= 0) {
      res.write(lines.slice(0, cut).join(''), () => res.socket?.destroy());
      return 0;
    }
  }
  res.end(sse);
  return 200;
}
