// The demo's clients of the daemon, as any program would be: a WebSocket client speaking the
// /v1/ws messages (DESIGN.md "Interfaces"), and the official `openai` client over HTTP.
import { WebSocket } from 'ws';
import { DemoStepError } from './demo-screen.ts';

/** How one request ended, over either API. */
export interface Outcome {
  via: 'ws' | 'http';
  requestId: string | null;
  provider: string | null;
  text: string;
  chunks: number;
  error: { code: string; message: string } | null;
}

export type ProviderEvent = { provider: string; kind: string; state: string; model: string | null; detail?: string };
export type PaymentEvent = { request_id: string; provider: string | null; status: string; attempts: number };

interface Pending {
  outcome: Outcome;
  resolve(o: Outcome): void;
}

/** One WebSocket connection, many requests by id, and the `payments`/`providers` topics. */
export class DemoSocket {
  private readonly pending = new Map<string, Pending>();
  readonly payments: PaymentEvent[] = [];
  onProviders: (e: ProviderEvent) => void = () => {};

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => this.onMessage(String(data)));
    ws.on('close', () => {
      for (const [id, p] of this.pending) p.resolve({ ...p.outcome, error: { code: 'closed', message: 'the connection closed' } }), this.pending.delete(id);
    });
  }

  /** Connect with the key in the Authorization header; subscribe to both topics. */
  static async open(url: string, key: string): Promise<DemoSocket> {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${key}` } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (err) => reject(new DemoStepError(`WebSocket ${url}: ${err.message}`)));
    });
    const socket = new DemoSocket(ws);
    ws.send(JSON.stringify({ type: 'subscribe', topics: ['payments', 'providers'] }));
    return socket;
  }

  request(id: string, endpoint: string, body: Record<string, unknown>, options: { provider?: string } = {}): Promise<Outcome> {
    return new Promise((resolve) => {
      const outcome: Outcome = { via: 'ws', requestId: null, provider: null, text: '', chunks: 0, error: null };
      this.pending.set(id, { outcome, resolve });
      this.ws.send(JSON.stringify({ type: 'request', id, endpoint, body, ...options }));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
    });
  }

  private onMessage(text: string): void {
    const m = JSON.parse(text) as Record<string, any>;
    if (m.type === 'event') {
      if (m.topic === 'payments' && typeof m.request_id === 'string') this.payments.push(m as PaymentEvent);
      if (m.topic === 'providers') this.onProviders(m as ProviderEvent);
      return;
    }
    const p = typeof m.id === 'string' ? this.pending.get(m.id) : undefined;
    if (!p) return;
    const o = p.outcome;
    if (m.type === 'accepted') {
      o.requestId = m.request_id ?? o.requestId;
    } else if (m.type === 'chunk') {
      o.chunks++;
      o.text += m.data?.choices?.[0]?.delta?.content ?? '';
    } else if (m.type === 'response') {
      o.text = m.data?.choices?.[0]?.message?.content ?? (Array.isArray(m.data?.data) ? `${m.data.data.length} embedding(s)` : '');
    } else if (m.type === 'done' || m.type === 'error') {
      if (m.type === 'done') Object.assign(o, { requestId: m.request_id, provider: m.provider });
      else o.error = { code: m.code, message: m.message };
      this.pending.delete(m.id);
      p.resolve(o);
    }
  }
}

// A devDependency: named through a variable so that the build (bin/build.js) leaves it out and
// an install without dev dependencies still compiles (the demo itself needs them: test/world).
const OPENAI = 'openai';

/** The OpenAI SDK pointed at the daemon (loaded on first use). */
export async function openaiClient(httpBase: string, key: string) {
  const { default: OpenAI } = (await import(OPENAI)) as typeof import('openai');
  return new OpenAI({ apiKey: key, baseURL: `${httpBase}/v1`, maxRetries: 0, timeout: 30_000 });
}

type Client = Awaited<ReturnType<typeof openaiClient>>;

/** A chat completion over HTTP, streamed or not; errors become the outcome's error. */
export async function httpChat(client: Client, body: { model: string; messages: { role: 'user'; content: string }[]; max_tokens: number }, stream: boolean): Promise<Outcome> {
  const o: Outcome = { via: 'http', requestId: null, provider: null, text: '', chunks: 0, error: null };
  try {
    if (stream) {
      const { data, response } = await client.chat.completions.create({ ...body, stream: true }).withResponse();
      o.requestId = response.headers.get('x-satroute-request-id');
      for await (const chunk of data) {
        o.chunks++;
        o.text += chunk.choices?.[0]?.delta?.content ?? '';
        const sr = (chunk as unknown as { satroute?: { request_id: string; provider: string } }).satroute;
        if (sr) Object.assign(o, { requestId: sr.request_id, provider: sr.provider });
      }
    } else {
      const { data, response } = await client.chat.completions.create({ ...body, stream: false }).withResponse();
      o.text = data.choices[0]?.message?.content ?? '';
      o.requestId = response.headers.get('x-satroute-request-id');
      o.provider = response.headers.get('x-satroute-provider');
    }
  } catch (err) {
    o.error = { code: String((err as { code?: unknown }).code ?? (err as { status?: unknown }).status ?? 'error'), message: (err as Error).message };
  }
  return o;
}

/** Embeddings over HTTP. */
export async function httpEmbed(client: Client, model: string, input: string[]): Promise<Outcome> {
  const o: Outcome = { via: 'http', requestId: null, provider: null, text: '', chunks: 0, error: null };
  try {
    const { data, response } = await client.embeddings.create({ model, input }).withResponse();
    o.text = `${data.data.length} embeddings of ${data.data[0]?.embedding.length ?? 0} numbers`;
    o.requestId = response.headers.get('x-satroute-request-id');
    o.provider = response.headers.get('x-satroute-provider');
  } catch (err) {
    o.error = { code: String((err as { status?: unknown }).status ?? 'error'), message: (err as Error).message };
  }
  return o;
}
