// The daemon's HTTP listener (node:http, keep-alive): the OpenAI-compatible API, the admin
// routes and /metrics (DESIGN.md "Interfaces"). Every route but `GET /healthz` needs
// `Authorization: Bearer sr_...`; /admin/* needs the admin scope. Bodies are size-limited and
// parsed at the edge (protocol/openai.ts); the paid routes hand an ApiRequest to the request
// lifecycle (contract.ts) with an HttpSink. Every error - ours, the lifecycle's, a bad body -
// becomes OpenAI's error shape through toApiError, in one place (`sendError`).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { nullLogger, type Logger } from '../../protocol/logger.ts';
import { DEFAULT_MAX_REQUEST_BYTES, isPaidEndpoint, parseRequestBody, RequestBodyError, type PaidEndpoint } from '../../protocol/openai.ts';
import type { ApiRequest, PaymentModeChoice, RequestHandler } from '../requests/contract.ts';
import type { Policy } from '../route/estimate.ts';
import { requireAdmin, type ClientKey, type ClientKeys } from './auth.ts';
import { BadRequestError, CanceledError, errorHeaders, NotFoundError, openAiErrorBody, PayloadTooLargeError, toApiError } from './errors.ts';
import { HttpSink } from './http-sink.ts';
import { metricsHandler, type DaemonMetrics } from './metrics.ts';

export class ListenError extends Error {
  override name = 'ListenError';
}

/** Parse "host:port" (IPv6 as "[::1]:8340"). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ListenError(`invalid listen address "${listen}": expected host:port, e.g. 127.0.0.1:8340`);
  return { host: m[1] ?? m[2], port };
}

/** The admin routes' data, read when asked. */
export interface AdminSources {
  status(): unknown;
  providers(): unknown;
  breakers(): unknown;
  wallet(): unknown;
  /** `?since=&until=` (ISO or ms), `client`, `provider`, `flagged`, `attempts`. */
  audit(q: { since?: number; until?: number; client?: string; provider?: string; flagged?: boolean; attempts?: boolean }): unknown;
}

export interface HttpApiDeps {
  keys: Pick<ClientKeys, 'authenticate'>;
  /** The request lifecycle; without it the paid routes answer 503. */
  handler?: RequestHandler;
  metrics?: DaemonMetrics;
  /** `GET /v1/models`: the catalogue, cheapest price per model. */
  models?: () => readonly { id: string; aliases?: string[]; providers?: number; cheapest?: unknown; context_length?: number | null }[];
  /** Extra fields of `GET /healthz`. */
  health?: () => Record<string, unknown>;
  admin?: AdminSources;
  maxBodyBytes?: number;
  logger?: Logger;
  /** Epoch ms for `created` fields. */
  clock?: () => number;
}

export interface HttpApi {
  /** host:port actually bound (port 0 in the config becomes the real port). */
  readonly address: string;
  /** For the WebSocket API to attach its upgrade handler. */
  readonly server: http.Server;
  /** Stop accepting connections (SIGTERM); requests in flight go on. */
  stopAccepting(): Promise<void>;
  /** Cut every connection and stop. */
  close(): Promise<void>;
}

const POLICIES: readonly Policy[] = ['cheapest', 'balanced'];

export async function startHttpApi(listen: string, deps: HttpApiDeps): Promise<HttpApi> {
  const { host, port } = parseListen(listen);
  const logger = deps.logger ?? nullLogger;
  const server = http.createServer((req, res) => {
    route(deps, req, res).catch((err) => sendError(res, err, logger));
  });
  server.requestTimeout = 0; // a streamed answer may take minutes; request bodies are bounded by headersTimeout + the size limit
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ListenError(err.code === 'EADDRINUSE' ? `cannot listen on ${listen}: the address is in use` : `cannot listen on ${listen}: ${err.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  const stopAccepting = () =>
    (stopped ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    }));
  return {
    address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
    server,
    stopAccepting: async () => {
      void stopAccepting();
    },
    close: async () => {
      const done = stopAccepting();
      server.closeAllConnections();
      await done;
    },
  };
}

async function route(deps: HttpApiDeps, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const receivedAt = performance.now();
  const path = pathOf(req.url);
  const method = req.method ?? 'GET';
  if (path === '/healthz') {
    if (method !== 'GET' && method !== 'HEAD') throw new NotFoundError(`no route ${method} ${path}`);
    return sendJson(res, 200, { ok: true, ...deps.health?.() }, method === 'HEAD');
  }
  const client = deps.keys.authenticate(req.headers.authorization);

  if (isPaidEndpoint(path)) {
    if (method !== 'POST') throw new NotFoundError(`${path} takes POST`);
    return paid(deps, client, path, req, res, receivedAt);
  }
  if (method !== 'GET' && method !== 'HEAD') throw new NotFoundError(`no route ${method} ${path}`);
  if (path === '/v1/models') {
    const created = Math.floor((deps.clock ?? Date.now)() / 1000);
    const data = (deps.models?.() ?? []).map((m) => ({ id: m.id, object: 'model', created, owned_by: 'satroute', satroute: m }));
    return sendJson(res, 200, { object: 'list', data }, method === 'HEAD');
  }
  if (path === '/metrics') {
    if (!deps.metrics) throw new NotFoundError('metrics are not enabled');
    return metricsHandler(deps.metrics)(req, res);
  }
  if (path.startsWith('/admin/')) {
    requireAdmin(client);
    const admin = deps.admin;
    if (!admin) throw new NotFoundError('no admin routes in this daemon');
    const name = path.slice('/admin/'.length);
    const q = new URL(req.url ?? '/', 'http://localhost').searchParams;
    const body =
      name === 'status' ? admin.status()
      : name === 'providers' ? admin.providers()
      : name === 'breakers' ? admin.breakers()
      : name === 'wallet' ? admin.wallet()
      : name === 'audit' ? admin.audit(auditQuery(q))
      : undefined;
    if (body === undefined) throw new NotFoundError(`no admin route ${path} (status, providers, breakers, wallet, audit)`);
    return sendJson(res, 200, body, method === 'HEAD');
  }
  throw new NotFoundError(`no route ${method} ${path}`);
}

async function paid(deps: HttpApiDeps, client: ClientKey, endpoint: PaidEndpoint, req: http.IncomingMessage, res: http.ServerResponse, receivedAt: number): Promise<void> {
  const limit = deps.maxBodyBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const options = requestOptions(req);
  const raw = await readBody(req, limit);
  let body;
  try {
    body = parseRequestBody(endpoint, raw, { maxBytes: limit });
  } catch (err) {
    if (err instanceof RequestBodyError) throw err.code === 'too_large' ? new PayloadTooLargeError(limit) : new BadRequestError(err.message);
    throw err;
  }
  if (!deps.handler) throw new NotFoundError('this daemon routes no requests');
  const ctl = new AbortController();
  // The client went away before the answer was complete: the upstream call stops, its charge is settled.
  res.on('close', () => {
    if (!res.writableFinished) ctl.abort(new CanceledError());
  });
  const stream = (body as { stream?: unknown }).stream === true;
  const apiReq: ApiRequest = { client, endpoint, body, stream, signal: ctl.signal, receivedAt, ...options };
  await deps.handler.handle(apiReq, new HttpSink(res, endpoint, stream));
}

/** The optional x-satroute-* request headers. */
function requestOptions(req: http.IncomingMessage): Pick<ApiRequest, 'maxSats' | 'policy' | 'provider' | 'explain' | 'payment'> {
  const h = (name: string): string | undefined => {
    const v = req.headers[name];
    return (Array.isArray(v) ? v[0] : v)?.trim() || undefined;
  };
  const out: Pick<ApiRequest, 'maxSats' | 'policy' | 'provider' | 'explain' | 'payment'> = {};
  const max = h('x-satroute-max-sats');
  if (max !== undefined) {
    if (!/^\d{1,15}$/.test(max) || Number(max) <= 0) throw new BadRequestError(`x-satroute-max-sats must be a positive whole number of sats, got "${max}"`);
    out.maxSats = Number(max);
  }
  const policy = h('x-satroute-policy');
  if (policy !== undefined) {
    if (!POLICIES.includes(policy as Policy)) throw new BadRequestError(`x-satroute-policy must be one of ${POLICIES.join(', ')}, got "${policy}"`);
    out.policy = policy as Policy;
  }
  const provider = h('x-satroute-provider');
  if (provider !== undefined) out.provider = provider;
  const explain = h('x-satroute-explain');
  if (explain === '1' || explain === 'true') out.explain = true;
  const payment = h('x-satroute-payment');
  if (payment !== undefined) {
    if (payment !== 'xcashu' && payment !== 'session') throw new BadRequestError(`x-satroute-payment must be xcashu or session, got "${payment}"`);
    out.payment = payment as PaymentModeChoice;
  }
  return out;
}

/** The request body, at most `limit` bytes (413 past it, without reading the rest). */
async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new PayloadTooLargeError(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new PayloadTooLargeError(limit);
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
}

function auditQuery(q: URLSearchParams): Parameters<AdminSources['audit']>[0] {
  const time = (name: string): number | undefined => {
    const v = q.get(name);
    if (v === null || v === '') return undefined;
    const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
    if (!Number.isFinite(ms)) throw new BadRequestError(`${name} must be an ISO date or ms since the epoch, got "${v}"`);
    return ms;
  };
  const flag = (name: string) => ['1', 'true', ''].includes(q.get(name) ?? 'no');
  return {
    since: time('since'), until: time('until'), client: q.get('client') ?? undefined, provider: q.get('provider') ?? undefined,
    flagged: flag('flagged'), attempts: flag('attempts'),
  };
}

function pathOf(url: string | undefined): string {
  const u = url ?? '/';
  const q = u.indexOf('?');
  const p = q === -1 ? u : u.slice(0, q);
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, head = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(head ? undefined : text);
}

/** The one error handler: any error as OpenAI's error shape, status and retry headers. */
function sendError(res: http.ServerResponse, err: unknown, logger: Logger): void {
  const e = toApiError(err);
  if (e.code === 'internal') logger.error('HTTP request failed', { error: err as Error });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(openAiErrorBody(e));
  // A body we did not read (too large, refused before reading) cannot share the connection.
  const close = e.status === 413 || e.status === 401;
  res.writeHead(e.status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...errorHeaders(e), ...(close ? { connection: 'close' } : {}) });
  res.end(text);
}
