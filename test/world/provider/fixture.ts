// Shared setup for the provider tests: a Lightning network, a test mint with sat and msat
// keysets, a cashu-ts wallet funded over Lightning that makes real tokens, and a simulated
// provider paid over HTTP exactly as a client would.
import type { TestContext } from 'node:test';
import { getEncodedToken, sumProofs, Wallet, type Proof } from '@cashu/cashu-ts';
import { LightningNetwork } from '../lightning.ts';
import { startMint, type MintOptions, type TestMint } from '../mint.ts';
import { startProvider, type ModelSpec, type ProviderOptions, type TestProvider } from '../provider.ts';

// 0.01 sat = 10 msat per prompt token, 0.02 sat = 20 msat per completion token;
// max_cost = 7168 x 0.01 + 1024 x 0.02 = 92.16 sats.
export const CHAT: ModelSpec = { id: 'sim/chat', aliasIds: ['chat-alias'], promptSatsPerToken: 0.01, completionSatsPerToken: 0.02 };
export const QUESTION = 'What is the capital of France? Answer briefly.';

/** A client of one mint: a funded cashu-ts wallet that hands out exact tokens. */
export class Payer {
  private pool: Proof[] = [];
  constructor(
    readonly ln: LightningNetwork,
    readonly mint: TestMint,
    readonly wallet: Wallet,
  ) {}

  static async start(ln: LightningNetwork, mint: TestMint, fundSat: number, unit: 'sat' | 'msat' = 'sat'): Promise<Payer> {
    const wallet = new Wallet(mint.url, { unit });
    await wallet.loadMint();
    const payer = new Payer(ln, mint, wallet);
    await payer.fund(fundSat);
    return payer;
  }

  async fund(amount: number): Promise<void> {
    const quote = await this.wallet.createMintQuoteBolt11(amount);
    this.ln.pay(quote.request);
    this.pool.push(...(await this.wallet.mintProofsBolt11(amount, quote.quote)));
  }

  /** A token of exactly `amount`, its mint written as `spelling` (default: the mint's URL). */
  async token(amount: number, spelling = this.mint.url): Promise<string> {
    const { keep, send } = await this.wallet.send(amount, this.pool);
    this.pool = keep;
    return getEncodedToken({ mint: spelling, unit: this.wallet.unit, proofs: send });
  }

  /** Proofs of exactly `amount` (for hand-made tokens). */
  async proofs(amount: number): Promise<Proof[]> {
    const { keep, send } = await this.wallet.send(amount, this.pool);
    this.pool = keep;
    return send;
  }

  /** Swap a token in at the mint (proving it is spendable) and return its value. */
  async redeem(token: string): Promise<number> {
    const proofs = await this.wallet.receive(token);
    this.pool.push(...proofs);
    return sumProofs(proofs).toNumber();
  }

  isSpent(token: string): boolean {
    return this.wallet.decodeToken(token).proofs.every((p) => this.mint.isSpent(p.secret));
  }
}

export interface Market {
  ln: LightningNetwork;
  mint: TestMint;
  payer: Payer;
}

/** A Lightning network, one mint and a payer funded with `fundSat`. */
export async function market(t: { after: (fn: () => Promise<void>) => void }, fundSat = 2000, mintOpts: Partial<MintOptions> = {}): Promise<Market> {
  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln, ...mintOpts });
  t.after(() => mint.stop());
  return { ln, mint, payer: await Payer.start(ln, mint, fundSat) };
}

export async function provider(t: TestContext, mints: string[], opts: Partial<ProviderOptions> = {}): Promise<TestProvider> {
  const p = await startProvider({ name: 'sim-a', relays: [], mints, models: [CHAT], noAnnounce: true, ...opts });
  t.after(() => p.stop());
  return p;
}

/** POST a paid request with X-Cashu. */
export function post(p: TestProvider, path: string, token: string | undefined, body: Record<string, unknown>): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers['X-Cashu'] = token;
  return fetch(`${p.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
}

export const chatBody = (over: Record<string, unknown> = {}) => ({ model: CHAT.id, messages: [{ role: 'user', content: QUESTION }], max_tokens: 100, ...over });

export const chat = (p: TestProvider, token: string | undefined, over: Record<string, unknown> = {}) => post(p, '/v1/chat/completions', token, chatBody(over));

export const refund = (p: TestProvider, token: string) => fetch(`${p.url}/v1/balance/refund`, { method: 'POST', headers: { 'X-Cashu': token } });

/** Tokens the fake upstream reports for QUESTION, and the honest token-priced cost at CHAT's prices. */
export function expectedFor(providerName: string) {
  const promptTokens = Math.ceil(QUESTION.length / 4);
  const completionTokens = Math.ceil(`${providerName} heard: ${QUESTION}`.length / 4);
  return { promptTokens, completionTokens, costMsat: promptTokens * 10 + completionTokens * 20 };
}

export interface ErrorBody {
  error: { message: string; type: string; code: string | number; refund_token?: string };
  request_id?: string;
}
