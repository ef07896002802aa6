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

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
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

// Unref'd: a long simulated latency must not keep the process alive after stop().
export const sleep = (ms: number): Promise<void> => (ms > 0 ? new Promise((r) => setTimeout(r, ms).unref()) : Promise.resolve());
