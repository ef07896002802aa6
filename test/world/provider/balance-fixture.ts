// Shared setup of the balance-mode world tests: a real mint funded over the simulated
// Lightning network, a cashu-ts client wallet, a provider, and a gate that stands in for the
// fake upstream's timers so tests decide when each chunk is made (no sleeping).
import type { TestContext } from 'node:test';
import { getEncodedToken, sumProofs, Wallet, type Proof } from '@cashu/cashu-ts';
import { LightningNetwork } from '../lightning.ts';
import { startMint, type TestMint } from '../mint.ts';
import { startProvider, type ModelSpec, type ProviderOptions, type TestProvider } from '../provider.ts';

// 10 msat per prompt token, 20 msat per completion token (max_cost 92.16 sats).
export const CHAT: ModelSpec = { id: 'sim/chat', promptSatsPerToken: 0.01, completionSatsPerToken: 0.02 };
// 1 and 2 msat per token: a request costs well under a sat.
export const TINY: ModelSpec = { id: 'sim/tiny', promptSatsPerToken: 0.001, completionSatsPerToken: 0.002 };
export const EMBED: ModelSpec = { id: 'sim/embed', promptSatsPerToken: 0.005, completionSatsPerToken: 0, maxCostSats: 2, kind: 'embedding' };
export const QUESTION = 'What is the capital of France? Answer briefly.';

/** Prompt and completion tokens the fake upstream reports for QUESTION from `provider`. */
export function tokensFor(provider: string) {
  return { prompt: Math.ceil(QUESTION.length / 4), completion: Math.ceil(`${provider} heard: ${QUESTION}`.length / 4) };
}

export interface Client {
  ln: LightningNetwork;
  mint: TestMint;
  sats: Wallet;
  msats: Wallet;
  /** A sat token of exactly `amount`. */
  pay(amount: number): Promise<string>;
  payMsat(amount: number): Promise<string>;
  /** Receive a token at the mint (proving it spendable); its value. */
  redeem(token: string, unit?: 'sat' | 'msat'): Promise<number>;
  stop(): Promise<void>;
}

export async function startClient(): Promise<Client> {
  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln, units: ['sat', 'msat'] });
  const sats = new Wallet(mint.url, { unit: 'sat' });
  const msats = new Wallet(mint.url, { unit: 'msat' });
  await Promise.all([sats.loadMint(), msats.loadMint()]);
  const fund = async (w: Wallet, amount: number) => {
    const quote = await w.createMintQuoteBolt11(amount);
    ln.pay(quote.request);
    return w.mintProofsBolt11(amount, quote.quote);
  };
  const pools: Record<'sat' | 'msat', Proof[]> = { sat: await fund(sats, 3000), msat: await fund(msats, 100_000) };
  const send = async (unit: 'sat' | 'msat', amount: number) => {
    const w = unit === 'sat' ? sats : msats;
    const { keep, send: out } = await w.send(amount, pools[unit]);
    pools[unit] = keep;
    return getEncodedToken({ mint: mint.url, unit, proofs: out });
  };
  return {
    ln,
    mint,
    sats,
    msats,
    pay: (amount) => send('sat', amount),
    payMsat: (amount) => send('msat', amount),
    async redeem(token, unit = 'sat') {
      const proofs = await (unit === 'sat' ? sats : msats).receive(token);
      pools[unit].push(...proofs);
      return sumProofs(proofs).toNumber();
    },
    stop: () => mint.stop(),
  };
}

/** Start a provider on the client's mint (no relay), stopped after the test. */
export async function provider(t: TestContext, client: Client, opts: Partial<ProviderOptions> = {}): Promise<TestProvider> {
  const p = await startProvider({ name: 'sim-b', relays: [], mints: [client.mint.url], models: [CHAT, TINY, EMBED], noAnnounce: true, ...opts });
  t.after(() => p.stop());
  return p;
}

/**
 * Stands in for the provider's timers: each `delay(ms)` waits until the test releases it,
 * and the virtual clock `now` advances by the delays released. ms <= 0 does not wait.
 */
export class Gate {
  now = 0;
  private auto = false;
  private readonly waiting: { ms: number; resolve: () => void }[] = [];
  private readonly watchers: { n: number; resolve: () => void }[] = [];

  readonly delay = (ms: number): Promise<void> => {
    if (ms <= 0) return Promise.resolve();
    if (this.auto) {
      this.now += ms;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.waiting.push({ ms, resolve });
      for (const w of this.watchers.filter((x) => this.waiting.length >= x.n)) {
        this.watchers.splice(this.watchers.indexOf(w), 1);
        w.resolve();
      }
    });
  };

  get pending(): number {
    return this.waiting.length;
  }

  /** Resolves once at least `n` delays are waiting. */
  until(n: number): Promise<void> {
    if (this.waiting.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.watchers.push({ n, resolve }));
  }

  /** Let the oldest waiting delay end. */
  releaseOne(): void {
    const w = this.waiting.shift();
    if (!w) throw new Error('no delay is waiting');
    this.now += w.ms;
    w.resolve();
  }

  /** Make each delay from now on wait for the test again. */
  hold(): void {
    this.auto = false;
  }

  /** Let every delay end, now and from now on. */
  open(): void {
    this.auto = true;
    while (this.waiting.length) this.releaseOne();
  }
}

/** Wait (turning the event loop, not the clock) until `cond` holds. */
export async function eventually(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

export const bearer = (key: string) => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' });

export function chat(p: TestProvider, key: string, body: Record<string, unknown> = {}, init: RequestInit = {}, path = '/v1/chat/completions') {
  return fetch(`${p.url}${path}`, {
    method: 'POST',
    headers: bearer(key),
    body: JSON.stringify({ model: CHAT.id, messages: [{ role: 'user', content: QUESTION }], max_tokens: 100, ...body }),
    ...init,
  });
}

export async function createKey(p: TestProvider, token: string): Promise<{ api_key: string; balance: number }> {
  const res = await fetch(`${p.url}/v1/balance/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ initial_balance_token: token }) });
  if (res.status !== 200) throw new Error(`create answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as { api_key: string; balance: number };
}

export interface BalanceInfo {
  api_key: string;
  balance: number;
  reserved: number;
  total_requests: number;
  total_spent: number;
}

export async function info(p: TestProvider, key: string): Promise<BalanceInfo> {
  const res = await fetch(`${p.url}/v1/balance/info`, { headers: bearer(key) });
  if (res.status !== 200) throw new Error(`info answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as BalanceInfo;
}

export const refund = (p: TestProvider, key: string, prefix = '/v1/balance') => fetch(`${p.url}${prefix}/refund`, { method: 'POST', headers: { authorization: `Bearer ${key}` } });

/** The `detail` of a FastAPI error body. */
export async function detail(res: Response): Promise<unknown> {
  return ((await res.json()) as { detail: unknown }).detail;
}

/** Read SSE frames (text up to a blank line) one at a time. */
export function frames(res: Response) {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  return {
    /** The next whole frame, or null at the end of the stream. */
    async next(): Promise<string | null> {
      for (;;) {
        const i = buf.indexOf('\n\n');
        if (i >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          return frame;
        }
        const { value, done } = await reader.read();
        if (done) return buf ? buf : null;
        buf += decoder.decode(value, { stream: true });
      }
    },
    async rest(): Promise<string[]> {
      const out: string[] = [];
      for (let f = await this.next(); f !== null; f = await this.next()) out.push(f);
      return out;
    },
  };
}
