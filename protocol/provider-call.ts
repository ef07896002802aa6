// One paid HTTP request to a Routstr provider: POST <provider><endpoint> with X-Cashu (or a
// balance's Bearer key), and what came of it: an answer (a JSON body, or a stream of events),
// one of the node's refusals (protocol/outcome.ts), or a typed transport failure
// (protocol/call-errors.ts) saying whether the request could have reached the node.
//
// node:http with keep-alive agents rather than fetch: measured in bench/call.ts, it adds less
// per request. Idle sockets are closed after 4 s, under uvicorn's 5 s keep-alive, so a
// request is rarely written into a connection the node is closing.
//
// Timers: connect (DNS + TCP + TLS), first byte (request sent -> response headers; an X-Cashu
// stream is buffered by the node, so this is the whole generation), idle (between two pieces
// of the body, paused while our caller handles an event) and total. Bodies are read up to a
// byte limit whatever Content-Length says: a node may keep the upstream's Content-Length after
// re-serialising the body (ROUTSTR.md section 4), so a complete JSON answer that arrived
// before the connection stalled or closed is still accepted.
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import {
  ProviderBodyTooLargeError,
  ProviderCallCanceledError,
  ProviderCallError,
  ProviderConnectionLostError,
  ProviderMalformedError,
  ProviderTimeoutError,
  ProviderUnreachableError,
  type CallErrorContext,
  type CallPhase,
  type Reach,
  type TimeoutKind,
} from './call-errors.ts';
import { checkChange, type ChangeCheck } from './change.ts';
import { readReported, type Reported } from './cost.ts';
import { parseNodeJson } from './json.ts';
import { answerShapeProblem, MAX_BODY_DEPTH, nestedDeeperThan, withUsageRequested, type PaidEndpoint } from './openai.ts';
import { classifyAnswer, type AnswerMeta, type PaidWith, type Refusal, type TokenFate } from './outcome.ts';
import { ProviderStream, type StreamExchange } from './provider-stream.ts';

export interface CallTimeouts {
  connectMs: number;
  firstByteMs: number;
  idleMs: number;
  totalMs: number;
}

export const DEFAULT_CALL_TIMEOUTS: CallTimeouts = { connectMs: 5_000, firstByteMs: 180_000, idleMs: 60_000, totalMs: 600_000 };
export const DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_STREAM_BYTES = 64 * 1024 * 1024;
/** Error bodies past this are cut (and classified by what was read). */
const MAX_ERROR_BODY_BYTES = 256 * 1024;

export type Payment = { kind: 'xcashu'; token: string } | { kind: 'bearer'; apiKey: string };

export interface CallRequest {
  /** The provider's base URL (as announced; a path prefix is kept). */
  providerUrl: string;
  endpoint: PaidEndpoint;
  /** The request body, already checked (protocol/openai.ts). A streamed chat gets include_usage added. */
  body: Record<string, unknown>;
  payment: Payment;
  /** Our caller gave up (its client went away): the call stops with ProviderCallCanceledError. */
  signal?: AbortSignal;
  timeouts?: Partial<CallTimeouts>;
  /** Limit for a JSON answer; a stream has its own. */
  maxAnswerBytes?: number;
  maxStreamBytes?: number;
  /** Called once, when the response headers arrive (the node has answered). Must not throw. */
  onHeaders?: (status: number) => void;
}

export interface ProviderAgents {
  http: http.Agent;
  https: https.Agent;
  destroy(): void;
}

export interface CallDeps {
  agents?: ProviderAgents;
  /** A specific agent for some URLs (e.g. a SOCKS agent for .onion); undefined: the default. */
  agentFor?: (url: URL) => http.Agent | undefined;
  /** Epoch ms, for `timings.startedAt`. */
  clock?: () => number;
  /** Monotonic ms, for durations. */
  now?: () => number;
}

export interface CallTimings {
  /** When the call started (epoch ms, injected clock). */
  startedAt: number;
  /** ms from the start to the response headers. */
  headersMs: number;
  /** ms from the start to the end of a JSON body. */
  doneMs?: number;
}

interface OkCommon extends AnswerMeta {
  kind: 'ok';
  /** spent (X-Cashu: the node kept the token; change, if any, in changeToken) or none (balance). */
  token: TokenFate;
  /** The change token from the X-Cashu response header. */
  changeToken?: string;
  /** That token read offline beside the one sent: its mint, unit, value and what is wrong with it (change.ts); read when first asked for. */
  change?: ChangeCheck;
  timings: CallTimings;
}
export interface OkAnswer extends OkCommon {
  stream: false;
  body: Record<string, unknown>;
  reported: Reported;
}
export interface OkStream extends OkCommon {
  stream: true;
  /** Iterate once (or cancel); `events.reported()` is complete when it ends. */
  events: ProviderStream;
}
export type CallOutcome = OkAnswer | OkStream | (Refusal & { timings: CallTimings });

/** Keep-alive agents for provider calls; idle sockets close after `freeSocketTimeoutMs`. */
export function createProviderAgents(opts: { maxSockets?: number; freeSocketTimeoutMs?: number } = {}): ProviderAgents {
  const o = { keepAlive: true, maxSockets: opts.maxSockets ?? 256, maxFreeSockets: 64, timeout: opts.freeSocketTimeoutMs ?? 4_000, scheduling: 'lifo' as const };
  const a = { http: new http.Agent(o), https: new https.Agent(o) };
  return { ...a, destroy: () => (a.http.destroy(), a.https.destroy()) };
}

let sharedAgents: ProviderAgents | undefined;
const defaultAgents = (): ProviderAgents => (sharedAgents ??= createProviderAgents());

/** `<provider><endpoint>`, whatever slashes the announced URL ends with. */
export function providerEndpointUrl(providerUrl: string, endpoint: string): URL {
  return new URL(providerUrl.replace(/\/+$/, '') + endpoint);
}

/**
 * Send one paid request. Resolves when the node has answered: with a JSON answer, a stream to
 * read, or a refusal; rejects with a ProviderCallError when there is no answer to classify.
 */
export async function callProvider(req: CallRequest, deps: CallDeps = {}): Promise<CallOutcome> {
  const streamWanted = req.body.stream === true;
  const body = withUsageRequested(req.endpoint, req.body);
  const ex = new Exchange(req, deps, Buffer.from(JSON.stringify(body)), streamWanted);
  const res = await ex.start();
  const status = res.statusCode ?? 0;
  const header = (name: string): string | undefined => {
    const v = res.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const xCashu = header('x-cashu')?.split(',')[0].trim() || undefined;
  const requestId = header('x-routstr-request-id');
  ex.known = { status, requestId, changeToken: xCashu };
  const timings: CallTimings = { startedAt: ex.startedAt, headersMs: ex.now() - ex.t0 };
  const paidWith: PaidWith = req.payment.kind;
  const sentToken = req.payment.kind === 'xcashu' ? req.payment.token : undefined;
  const okToken: TokenFate = paidWith === 'xcashu' ? 'spent' : 'none';
  const contentType = (header('content-type') ?? '').toLowerCase();

  if (status === 200 && (contentType.includes('text/event-stream') || (streamWanted && !contentType.includes('json')))) {
    const events = new ProviderStream(ex, ex.t0, req.maxStreamBytes ?? DEFAULT_MAX_STREAM_BYTES, header, req.endpoint);
    const out: OkStream = { kind: 'ok', stream: true, status, token: okToken, events, timings };
    return withChange(out, requestId, xCashu, sentToken);
  }

  const limit = status === 200 ? (req.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES) : MAX_ERROR_BODY_BYTES;
  const { text, failure } = await ex.readAll(limit, status !== 200);
  timings.doneMs = ex.now() - ex.t0;
  const json = text.length ? parseNodeJson(text) : undefined;
  // A transport failure mid-body stands unless what arrived is a whole JSON document.
  if (failure && json === undefined) throw failure;

  const refusal = classifyAnswer({ status, body: json, bodyText: text, xCashu, requestId, retryAfterHeader: header('retry-after'), paidWith, sentToken, nowMs: ex.clockNow() });
  if (refusal) return { ...refusal, timings };

  const ctx = ex.errorContext();
  if (json === undefined) throw new ProviderMalformedError('provider answered 200 with a body that is not JSON', ctx);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ProviderMalformedError('provider answered 200 with JSON that is not an object', ctx);
  const problem = answerShapeProblem(req.endpoint, json);
  if (problem) throw new ProviderMalformedError(`provider answer is not a ${req.endpoint} answer (${problem})`, ctx);
  if (nestedDeeperThan(json, MAX_BODY_DEPTH)) throw new ProviderMalformedError(`provider answer nests deeper than ${MAX_BODY_DEPTH} levels`, ctx);
  const out: OkAnswer = { kind: 'ok', stream: false, status, token: okToken, body: json as Record<string, unknown>, reported: readReported(json, header), timings };
  return withChange(out, requestId, xCashu, sentToken);
}

function withChange<T extends OkCommon>(out: T, requestId: string | undefined, xCashu: string | undefined, sentToken: string | undefined): T {
  if (requestId) out.requestId = requestId;
  if (xCashu) out.changeToken = xCashu;
  if (xCashu && sentToken) {
    // Read on first use: two token decodes (~50 us) the request path need not pay for.
    let memo: ChangeCheck | undefined;
    Object.defineProperty(out, 'change', { get: () => (memo ??= checkChange(sentToken, xCashu)), enumerable: true, configurable: true });
  }
  return out;
}

/** One request/response exchange: the socket, its timers, and the first failure that stands. */
class Exchange implements StreamExchange {
  res!: http.IncomingMessage;
  failure: ProviderCallError | null = null;
  known: { status?: number; requestId?: string; changeToken?: string } = {};
  readonly startedAt: number;
  readonly t0: number;
  readonly idleMs: number;
  private readonly timeouts: CallTimeouts;
  private creq!: http.ClientRequest;
  private phase: CallPhase = 'connect';
  private reused = false;
  private timers = new Map<TimeoutKind, NodeJS.Timeout>();
  private progress: (() => { eventsDelivered: number; reported: Reported }) | undefined;
  private onAbort: (() => void) | undefined;
  private done = false;

  constructor(
    private readonly req: CallRequest,
    private readonly deps: CallDeps,
    private readonly payload: Buffer,
    private readonly streamWanted: boolean,
  ) {
    this.timeouts = { ...DEFAULT_CALL_TIMEOUTS, ...req.timeouts };
    this.idleMs = this.timeouts.idleMs;
    this.startedAt = this.clockNow();
    this.t0 = this.now();
  }

  now(): number {
    return this.deps.now ? this.deps.now() : performance.now();
  }

  clockNow(): number {
    return this.deps.clock ? this.deps.clock() : Date.now();
  }

  start(): Promise<http.IncomingMessage> {
    const { req } = this;
    if (req.signal?.aborted) return Promise.reject(new ProviderCallCanceledError('canceled before sending', { reached: 'no', phase: 'connect' }));
    let url: URL;
    try {
      url = providerEndpointUrl(req.providerUrl, req.endpoint);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported scheme ${url.protocol}`);
    } catch (err) {
      return Promise.reject(new ProviderUnreachableError(`not a provider URL: ${req.providerUrl}`, { reached: 'no', phase: 'connect', cause: err }));
    }
    const secure = url.protocol === 'https:';
    const agents = this.deps.agents ?? defaultAgents();
    const agent = this.deps.agentFor?.(url) ?? (secure ? agents.https : agents.http);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(this.payload.length),
      accept: this.streamWanted ? 'text/event-stream' : 'application/json',
    };
    if (req.payment.kind === 'xcashu') headers['x-cashu'] = req.payment.token;
    else headers.authorization = `Bearer ${req.payment.apiKey}`;

    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err: ProviderCallError | null, res?: http.IncomingMessage) => {
        if (settled) return;
        settled = true;
        if (err) {
          this.finish(true);
          reject(err);
        } else resolve(res!);
      };
      this.settleHeaders = (err) => settle(err);
      const creq = (secure ? https : http).request({
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || (secure ? 443 : 80),
        path: url.pathname + url.search,
        method: 'POST',
        headers,
        agent,
      });
      this.creq = creq;
      this.arm('total', this.timeouts.totalMs);
      this.arm('connect', this.timeouts.connectMs);
      creq.on('socket', (socket: Socket) => {
        this.reused = creq.reusedSocket;
        if (socket.connecting) socket.once(socket instanceof TLSSocket ? 'secureConnect' : 'connect', () => this.connected());
        else this.connected();
      });
      creq.on('response', (res) => {
        this.disarm('first_byte');
        this.phase = 'body';
        this.res = res;
        try {
          req.onHeaders?.(res.statusCode ?? 0);
        } catch {
          // A throwing callback must not take the process down from inside node:http's event.
        }
        settle(null, res);
      });
      // Errors after the headers reach the body reader through the response; this listener
      // only turns the ones before into a typed failure (and keeps 'error' handled).
      creq.on('error', (err) => settle(this.failure ?? this.mapError(err)));
      if (req.signal) {
        this.onAbort = () => this.fail(new ProviderCallCanceledError('canceled by caller', this.errorContext()));
        req.signal.addEventListener('abort', this.onAbort, { once: true });
      }
      creq.end(this.payload);
    });
  }

  private settleHeaders: (err: ProviderCallError) => void = () => {};

  private connected(): void {
    if (this.phase !== 'connect') return;
    this.disarm('connect');
    this.phase = 'send';
    this.arm('first_byte', this.timeouts.firstByteMs);
  }

  /** Read a whole body up to `limit` bytes; `cut`: stop there quietly instead of failing. */
  async readAll(limit: number, cut: boolean): Promise<{ text: string; failure: ProviderCallError | null }> {
    const chunks: Buffer[] = [];
    let size = 0;
    let failure: ProviderCallError | null = null;
    let clean = false;
    this.armIdle();
    try {
      for await (const chunk of this.res as AsyncIterable<Buffer>) {
        this.armIdle();
        if (size + chunk.length > limit) {
          if (cut) chunks.push(chunk.subarray(0, limit - size));
          else failure = this.fail(new ProviderBodyTooLargeError(limit, this.errorContext()));
          break;
        }
        size += chunk.length;
        chunks.push(chunk);
      }
      clean = !failure && this.res.complete;
    } catch (err) {
      failure = this.failure ?? this.mapError(err);
    } finally {
      this.finish(!clean);
    }
    if (failure instanceof ProviderBodyTooLargeError) throw failure;
    return { text: Buffer.concat(chunks).toString('utf8'), failure };
  }

  armIdle(ms?: number): void {
    this.arm('idle', ms ?? this.timeouts.idleMs);
  }

  disarmIdle(): void {
    this.disarm('idle');
  }

  setProgress(progress: () => { eventsDelivered: number; reported: Reported }): void {
    this.progress = progress;
  }

  fail(err: ProviderCallError): ProviderCallError {
    if (this.failure || this.done) return this.failure ?? err;
    this.failure = err;
    this.clearTimers();
    this.creq.destroy(err);
    this.settleHeaders(err);
    return err;
  }

  mapError(err: unknown): ProviderCallError {
    if (this.failure) return this.failure;
    if (err instanceof ProviderCallError) return err;
    const code = (err as NodeJS.ErrnoException)?.code;
    const what = code ?? (err as Error)?.message ?? String(err);
    const ctx = { ...this.errorContext(), cause: err };
    if (this.phase === 'connect') return new ProviderUnreachableError(`cannot connect to the provider (${what})`, ctx);
    return new ProviderConnectionLostError(`connection to the provider lost ${this.phase === 'send' ? 'before its answer' : 'during its answer'} (${what})`, ctx);
  }

  errorContext(): CallErrorContext {
    const reached: Reach = this.phase === 'connect' ? 'no' : this.phase === 'send' ? 'unknown' : 'yes';
    const ctx: CallErrorContext = { reached, phase: this.phase, reusedSocket: this.reused, ...this.known };
    if (this.progress) Object.assign(ctx, this.progress());
    return ctx;
  }

  finish(destroy: boolean): void {
    if (this.done) return;
    this.done = true;
    this.clearTimers();
    if (this.onAbort) this.req.signal?.removeEventListener('abort', this.onAbort);
    if (destroy && !this.failure) this.creq.destroy();
  }

  private arm(kind: TimeoutKind, ms: number): void {
    if (this.done || this.failure) return;
    this.disarm(kind);
    this.timers.set(
      kind,
      setTimeout(() => this.fail(new ProviderTimeoutError(kind, ms, this.errorContext())), ms),
    );
  }

  private disarm(kind: TimeoutKind): void {
    const t = this.timers.get(kind);
    if (t) clearTimeout(t);
    this.timers.delete(kind);
  }

  private clearTimers(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
