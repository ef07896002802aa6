// The HTTP side of contract.ts ResponseSink: a JSON answer with the satroute headers, or an SSE
// stream whose last data chunk before `[DONE]` carries `usage` and a `satroute` object with the
// cost (DESIGN.md "Interfaces"). Errors before the first byte are OpenAI-shaped JSON with their
// status; after it, an SSE `data: {"error":...}` event (the official client raises it) ends the
// stream - never a silent switch.
import type { ServerResponse } from 'node:http';
import { formatSseEvent, SSE_DONE } from '../../protocol/sse.ts';
import type { PaidEndpoint } from '../../protocol/openai.ts';
import type { Accepted, Done, ResponseSink } from '../requests/contract.ts';
import { errorHeaders, openAiErrorBody, type ApiError } from './errors.ts';

/** The `satroute` object of a stream's last chunk (and of the WS `done`). */
export function satrouteObject(d: Done) {
  return {
    request_id: d.requestId,
    provider: d.provider,
    model: d.model,
    cost_msat: (d.cost.sent_sats - d.cost.change_sats) * 1000,
    ...d.cost,
    flags: d.flags,
    overhead_ms: round3(d.overheadMs),
  };
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export class HttpSink implements ResponseSink {
  private acc: Accepted | undefined;
  /** A chat chunk carrying usage, held back so the satroute object can join it. */
  private held: Record<string, unknown> | undefined;
  private last: Record<string, unknown> | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly endpoint: PaidEndpoint,
    private readonly stream: boolean,
  ) {}

  accepted(a: Accepted): void {
    this.acc = a;
    if (!this.stream || this.res.headersSent || this.res.destroyed) return;
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      ...this.idHeaders(a),
    });
  }

  response(body: unknown, done: Done): void {
    if (this.res.destroyed) return;
    const text = JSON.stringify(body);
    this.res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(text)),
      ...(this.acc ? this.idHeaders(this.acc) : { 'x-satroute-request-id': done.requestId, 'x-satroute-provider': headerValue(done.provider) }),
      'x-satroute-cost-msat': String((done.cost.sent_sats - done.cost.change_sats) * 1000),
      'x-satroute-charged-msat': String(done.cost.charged_msat),
      'x-satroute-overhead-ms': round3(done.overheadMs).toFixed(3),
      ...(done.flags.length ? { 'x-satroute-flags': done.flags.join(',') } : {}),
    });
    this.res.end(text);
  }

  chunk(data: unknown, event?: string): void | Promise<void> {
    if (this.endpoint === '/v1/chat/completions' && isObject(data)) {
      this.last = data;
      if (isObject(data.usage)) {
        // Held back to the end (usage closes a chat stream); an earlier one goes out first, so
        // a provider reporting usage in every chunk still has its chunks in order.
        const earlier = this.held;
        this.held = data;
        return earlier ? this.write(formatSseEvent(JSON.stringify(earlier))) : undefined;
      }
    }
    return this.write(formatSseEvent(JSON.stringify(data), event));
  }

  done(done: Done): void {
    if (this.res.destroyed) return;
    const satroute = satrouteObject(done);
    let final: Record<string, unknown>;
    if (this.endpoint === '/v1/chat/completions') {
      const base = this.held ?? { id: this.last?.id ?? done.requestId, object: 'chat.completion.chunk', created: this.last?.created ?? Math.floor(Date.now() / 1000), model: this.last?.model ?? done.model, choices: [] };
      final = { ...base, usage: done.usage ?? base.usage ?? null, satroute };
    } else {
      final = { type: 'satroute', satroute, usage: done.usage };
    }
    this.held = undefined;
    this.res.write(formatSseEvent(JSON.stringify(final), this.endpoint === '/v1/chat/completions' ? undefined : 'satroute'));
    this.res.end(SSE_DONE);
  }

  error(e: ApiError, requestId?: string): void {
    if (this.res.destroyed) return;
    if (!this.res.headersSent) {
      const text = JSON.stringify(openAiErrorBody(e));
      this.res.writeHead(e.status, { 'content-type': 'application/json', ...errorHeaders(e), ...(requestId ? { 'x-satroute-request-id': requestId } : {}) });
      this.res.end(text);
      return;
    }
    // Mid-stream: an explicit error event, then the end.
    if (this.held) this.res.write(formatSseEvent(JSON.stringify(this.held)));
    this.held = undefined;
    const body = { ...openAiErrorBody(e), satroute: { request_id: requestId ?? this.acc?.requestId ?? null, retryable: e.retryable } };
    this.res.write(formatSseEvent(JSON.stringify(body)));
    this.res.end(SSE_DONE);
  }

  private idHeaders(a: Accepted): Record<string, string> {
    const h: Record<string, string> = {
      'x-satroute-request-id': a.requestId,
      'x-satroute-provider': headerValue(a.provider),
      'x-satroute-model': headerValue(a.model),
      'x-satroute-reserved-sats': String(a.reservedSats),
      'x-satroute-attempts': String(a.failedAttempts + 1),
    };
    if (a.explain) h['x-satroute-explain'] = headerValue(JSON.stringify(a.explain));
    return h;
  }

  /** Write; a promise when the socket buffer is full (resolved on drain or close): a slow client slows the upstream read. */
  private write(text: string): void | Promise<void> {
    if (this.res.destroyed) throw new Error('client gone');
    if (this.res.write(text)) return;
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', gone);
        resolve();
      };
      const gone = () => {
        this.res.off('drain', done);
        reject(new Error('client gone'));
      };
      this.res.once('drain', done);
      this.res.once('close', gone);
    });
  }
}

/** Header values: printable ASCII only (node refuses the rest), under 8 KB (its limit for all headers is 16 KB). */
export function headerValue(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 8000 ? `${clean.slice(0, 7997)}...` : clean;
}
