// HTTP front of the test mint: routes NUT-01..07 and NUT-09 requests to the ledger, answers protocol
// errors as 400 {"detail","code"}, and applies the fault knobs (latency, failNext, ...).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { LightningError } from '../lightning.ts';
import { MintError, MintErrorCode } from './errors.ts';
import type { MintLedger } from './ledger.ts';
import { checkStateSchema, meltQuoteSchema, meltSchema, mintQuoteSchema, mintSchema, restoreSchema, swapSchema } from './schemas.ts';

export interface MintKnobs {
  /** Added before every answer. */
  latencyMs: number;
  /** The next N requests answer HTTP 500 without being processed. */
  failNext: number;
  /** The next N requests are processed, then the connection is dropped without an answer. */
  loseResponseNext: number;
  /** While a melt's Lightning payment is "in flight" its inputs are PENDING for this long. */
  meltDelayMs: number;
  /** failNext and loseResponseNext count only requests to this route (e.g. 'POST /v1/swap'); null: any. */
  onlyRoute: string | null;
  /** Answer 429 once the window is full (nutshell's limiter body; Retry-After when set); null: no limit. */
  rateLimit: MintRateLimit | null;
}

export interface MintRateLimit {
  /** Retry-After header in seconds; null: none (nutshell sends none, proxies in front of mints often do). */
  retryAfterSec: number | null;
  /** Requests admitted per window before 429s start; absent: every request gets 429. */
  maxRequests?: number;
  /** Window length for maxRequests, on the mint's clock; default 60 000 ms. */
  windowMs?: number;
}

export interface MintIdentity {
  name: string;
  pubkey: string;
  description: string;
  /** Offer NUT-09 restore (advertised in /v1/info, POST /v1/restore routed). */
  restore: boolean;
}

const MAX_BODY_BYTES = 4 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Handler = (body: unknown, param: string) => unknown;

export function createRequestHandler(ledger: MintLedger, knobs: MintKnobs, identity: MintIdentity, counts: Map<string, number>, onError: (err: unknown) => void, clock: () => number = Date.now) {
  const windowStarts: number[] = [];
  // A fixed-window limiter over every request, like nutshell's global slowapi limit.
  const admitted = (rl: MintRateLimit): boolean => {
    if (rl.maxRequests === undefined) return false;
    const now = clock();
    const windowMs = rl.windowMs ?? 60_000;
    while (windowStarts.length && windowStarts[0] <= now - windowMs) windowStarts.shift();
    if (windowStarts.length >= rl.maxRequests) return false;
    windowStarts.push(now);
    return true;
  };
  const routes: { method: string; pattern: RegExp; route: string; handle: Handler }[] = [];
  const on = (method: string, route: string, handle: Handler) => {
    const pattern = new RegExp('^' + route.replace(/:[a-z]+/, '([^/]+)') + '$');
    routes.push({ method, pattern, route, handle });
  };

  on('GET', '/v1/info', () => info(ledger, identity));
  on('GET', '/v1/keys', () => ({ keysets: [...ledger.keysets.values()].filter((k) => k.active).map(keysJson) }));
  on('GET', '/v1/keys/:id', (_b, id) => {
    const keyset = ledger.keysets.get(id.toLowerCase());
    if (!keyset) throw new MintError(MintErrorCode.KEYSET_UNKNOWN, `keyset ${id} is not known`);
    return { keysets: [keysJson(keyset)] };
  });
  on('GET', '/v1/keysets', () => ({
    keysets: [...ledger.keysets.values()].map((k) => ({ id: k.id, unit: k.unit, active: k.active, input_fee_ppk: k.inputFeePpk })),
  }));
  on('POST', '/v1/mint/quote/bolt11', (b) => ledger.createMintQuote(mintQuoteSchema.parse(b)));
  on('GET', '/v1/mint/quote/bolt11/:id', (_b, id) => ledger.getMintQuote(id));
  on('POST', '/v1/mint/bolt11', (b) => ledger.mint(mintSchema.parse(b)));
  on('POST', '/v1/melt/quote/bolt11', (b) => ledger.createMeltQuote(meltQuoteSchema.parse(b)));
  on('GET', '/v1/melt/quote/bolt11/:id', (_b, id) => ledger.getMeltQuote(id));
  on('POST', '/v1/melt/bolt11', (b) => ledger.melt(meltSchema.parse(b)));
  on('POST', '/v1/swap', (b) => ledger.swap(swapSchema.parse(b)));
  on('POST', '/v1/checkstate', (b) => ledger.checkState(checkStateSchema.parse(b)));
  if (identity.restore) on('POST', '/v1/restore', (b) => ledger.restore(restoreSchema.parse(b)));

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
    let match: RegExpExecArray | null = null;
    const route = routes.find((r) => r.method === req.method && (match = r.pattern.exec(path)) !== null);
    const key = route ? `${route.method} ${route.route}` : 'unknown';
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const targeted = knobs.onlyRoute === null || knobs.onlyRoute === key;
    const fail = targeted && knobs.failNext > 0;
    if (fail) knobs.failNext--;
    try {
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      if (knobs.latencyMs > 0) await new Promise((r) => setTimeout(r, knobs.latencyMs));
      const rl = knobs.rateLimit;
      if (rl && !admitted(rl)) {
        // nutshell's _rate_limit_exceeded_handler body; the route is not processed.
        send(res, 429, { detail: 'Rate limit exceeded.' }, rl.retryAfterSec === null ? {} : { 'retry-after': String(rl.retryAfterSec) });
        return;
      }
      if (fail) throw new HttpError(500, 'internal server error (failNext knob)');
      if (!route) throw new HttpError(404, 'not found');
      const result = await route.handle(body, decodeURIComponent((match as RegExpExecArray | null)?.[1] ?? ''));
      if (targeted && knobs.loseResponseNext > 0) {
        knobs.loseResponseNext--;
        req.socket.destroy();
        return;
      }
      send(res, 200, result);
    } catch (err) {
      if (err instanceof MintError) send(res, 400, { detail: err.message, code: err.code });
      else if (err instanceof z.ZodError) send(res, 400, { detail: `invalid request: ${z.prettifyError(err)}`, code: MintErrorCode.UNSPECIFIED });
      else if (err instanceof LightningError) send(res, 400, { detail: err.message, code: MintErrorCode.UNSPECIFIED });
      else if (err instanceof HttpError) send(res, err.status, { detail: err.message });
      else {
        onError(err);
        send(res, 500, { detail: 'internal mint error' });
      }
    }
  };
}

function info(ledger: MintLedger, identity: MintIdentity): unknown {
  const methods = ledger.units.map((unit) => ({ method: 'bolt11', unit, min_amount: 1, max_amount: null }));
  return {
    name: identity.name,
    pubkey: identity.pubkey,
    version: 'satroute-testmint/0.1.0',
    description: identity.description,
    contact: [],
    nuts: {
      4: { methods: methods.map((m) => ({ ...m, options: { description: true } })), disabled: false },
      5: { methods, disabled: false },
      7: { supported: true },
      8: { supported: true },
      ...(identity.restore ? { 9: { supported: true } } : {}),
      12: { supported: true },
    },
  };
}

function keysJson(k: { id: string; unit: string; active: boolean; inputFeePpk: number; publicKeys: Record<string, string> }) {
  return { id: k.id, unit: k.unit, active: k.active, input_fee_ppk: k.inputFeePpk, keys: k.publicKeys };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new MintError(MintErrorCode.UNSPECIFIED, 'request body is not JSON');
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
