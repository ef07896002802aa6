// Small node:http helpers for the simulated provider.
import type { IncomingMessage, ServerResponse } from 'node:http';

export const MAX_BODY_BYTES = 1_000_000;

export class BodyError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'BodyError';
  }
}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BodyError(413, 'Request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A FastAPI JSONResponse (HTTPException answers, /v1/info, refunds): compact JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendText(res, status, JSON.stringify(body), headers);
}

/** A Response(content=json.dumps(...)) the node builds itself (create_error_response, re-serialised upstream bodies). */
export function sendPyJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendText(res, status, pyDumps(body), headers);
}

function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string>): void {
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
  });
  res.end(text);
}

/** routstr's create_error_response body. */
export function errorBody(type: string, message: string, code: string | number, requestId: string, extra: Record<string, unknown> = {}) {
  return { error: { message, type, code, ...extra }, request_id: requestId };
}

/** FastAPI HTTPException body, as routstr's http_exception_handler shapes it. */
export function detailBody(detail: unknown, requestId: string) {
  return { detail, request_id: requestId };
}

/**
 * Python's json.dumps with its defaults: ", " and ": " separators, non-ASCII escaped
 * (ensure_ascii), floats as repr() writes them (2e-05), NaN and Infinity bare (allow_nan).
 */
export function pyDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  // allow_nan=True (the default): NaN and the infinities are written bare, which is not JSON.
  if (typeof value === 'number' && !Number.isFinite(value)) return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
  if (typeof value === 'number') return Number.isInteger(value) ? JSON.stringify(value) : pyRepr(value);
  if (typeof value === 'string') return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (Array.isArray(value)) return `[${value.map(pyDumps).join(', ')}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  return `{${entries.map(([k, v]) => `${pyDumps(k)}: ${pyDumps(v)}`).join(', ')}}`;
}

/** repr() of a Python float: shortest round-trip digits, exponent below 1e-4 or from 1e16. */
export function pyRepr(x: number): string {
  const abs = Math.abs(x);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e16)) {
    const [mantissa, exp] = x.toExponential().split('e');
    const e = Number(exp);
    return `${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  return Number.isInteger(x) ? x.toFixed(1) : String(x);
}

// Unref'd: a long simulated latency must not keep the process alive after stop().
export const sleep = (ms: number): Promise<void> => (ms > 0 ? new Promise((r) => setTimeout(r, ms).unref()) : Promise.resolve());

/** Wait until `ms` have passed on `clock` (the injected one: a test moves it on), polling every 5 ms. */
export async function elapse(clock: () => number, ms: number): Promise<void> {
  const start = clock();
  while (clock() - start < ms) await sleep(5);
}
