// Paid traffic as clients send it: HTTP and WebSocket, streaming and not, X-Cashu and session.
// A stream pays from a session balance by default (README "Live streaming"), a non-streamed
// request by X-Cashu; the kinds ending in a payment mode choose the other way explicitly
// (`x-satroute-payment` / the WebSocket `payment` field). Every request ends in exactly one
// outcome the client saw - answered, an error with a body, or the connection dropped (the daemon
// was killed) - and nothing here retries: what the books must explain is what was sent.
import WebSocket from 'ws';

export type Kind = 'http' | 'http-stream' | 'ws' | 'ws-stream' | 'http-stream-xcashu' | 'ws-stream-xcashu' | 'http-session' | 'ws-session';
export const KINDS: readonly Kind[] = ['http', 'http-stream', 'ws', 'ws-stream', 'http-stream-xcashu', 'ws-stream-xcashu', 'http-session', 'ws-session'];
/** Kinds that pay by token (a token taken, change coming back). */
export const XCASHU_KINDS: readonly Kind[] = ['http', 'ws', 'http-stream-xcashu', 'ws-stream-xcashu'];
/** Kinds that pay from a session balance (when the provider and the caps allow; else by token). */
export const SESSION_KINDS: readonly Kind[] = ['http-stream', 'ws-stream', 'http-session', 'ws-session'];

export type Outcome = 'answered' | 'error' | 'dropped';

export interface Sent {
  kind: Kind;
  outcome: Outcome;
  /** The daemon's request id, when the client learned it (accepted / done / error). */
  requestId?: string;
  detail?: string;
}

/** Per request: pin a provider (`x-satroute-provider`: its id, URL or name). */
export interface SendOptions {
  provider?: string;
}

const streamed = (kind: Kind) => kind.includes('stream');
const paymentOf = (kind: Kind): 'xcashu' | 'session' | undefined => (kind.endsWith('-xcashu') ? 'xcashu' : kind.endsWith('-session') ? 'session' : undefined);
const body = (model: string, stream: boolean, n: number) => ({ model, messages: [{ role: 'user', content: `chaos request ${n}` }], max_tokens: 40, ...(stream ? { stream: true } : {}) });

/** One request of `kind`; never rejects. */
export async function send(kind: Kind, base: string, key: string, model: string, n: number, o: SendOptions = {}): Promise<Sent> {
  try {
    return kind.startsWith('ws') ? await overWs(kind, base, key, model, n, o) : await overHttp(kind, base, key, model, n, o);
  } catch (err) {
    return { kind, outcome: 'dropped', detail: (err as Error).message };
  }
}

async function overHttp(kind: Kind, base: string, key: string, model: string, n: number, o: SendOptions): Promise<Sent> {
  const stream = streamed(kind);
  const payment = paymentOf(kind);
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`, 'content-type': 'application/json',
      ...(payment ? { 'x-satroute-payment': payment } : {}), ...(o.provider ? { 'x-satroute-provider': o.provider } : {}),
    },
    body: JSON.stringify(body(model, stream, n)),
    signal: AbortSignal.timeout(20_000),
  });
  const requestId = res.headers.get('x-satroute-request-id') ?? undefined;
  const text = await res.text(); // a kill mid-body rejects here: dropped
  if (res.status !== 200) return { kind, outcome: 'error', requestId, detail: `${res.status} ${text.slice(0, 200)}` };
  // A stream ends with [DONE], or with an error event the daemon wrote (never a silent end).
  if (stream && !text.includes('data: [DONE]')) return { kind, outcome: text.includes('"error"') ? 'error' : 'dropped', requestId, detail: text.slice(-200) };
  return { kind, outcome: 'answered', requestId };
}

function overWs(kind: Kind, base: string, key: string, model: string, n: number, o: SendOptions): Promise<Sent> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${key}` } });
    let requestId: string | undefined;
    let settled = false;
    const end = (s: Sent) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      resolve(s);
    };
    const timer = setTimeout(() => end({ kind, outcome: 'dropped', requestId, detail: 'no end within 20 s' }), 20_000);
    const payment = paymentOf(kind);
    ws.on('open', () => ws.send(JSON.stringify({
      type: 'request', id: `c${n}`, endpoint: '/v1/chat/completions', body: body(model, streamed(kind), n),
      ...(payment ? { payment } : {}), ...(o.provider ? { provider: o.provider } : {}),
    })));
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { type: string; id?: string; request_id?: string; error?: { message?: string } };
      if (m.request_id) requestId = m.request_id;
      if (m.type === 'done') end({ kind, outcome: 'answered', requestId });
      else if (m.type === 'error') end({ kind, outcome: 'error', requestId, detail: JSON.stringify(m).slice(0, 200) });
    });
    ws.on('error', (err) => end({ kind, outcome: 'dropped', requestId, detail: err.message }));
    ws.on('close', () => end({ kind, outcome: 'dropped', requestId, detail: 'closed' }));
  });
}

/**
 * Background traffic: `workers` clients, each sending one request after another (kinds drawn from
 * `random`) to whatever daemon `base()` names, until stop(). Resolves stop() with every request sent.
 */
export function traffic(o: { base: () => string | null; key: string; model: string; workers: number; random: () => number; pauseMs: number }): { stop(): Promise<Sent[]>; sent: Sent[] } {
  const sent: Sent[] = [];
  let running = true;
  let n = 0;
  const worker = async () => {
    while (running) {
      const base = o.base();
      if (base) sent.push(await send(KINDS[Math.floor(o.random() * KINDS.length)], base, o.key, o.model, n++));
      await new Promise((r) => setTimeout(r, o.pauseMs));
    }
  };
  const all = Promise.all(Array.from({ length: o.workers }, worker));
  return {
    sent,
    async stop() {
      running = false;
      await all;
      return sent;
    },
  };
}
