// Shared setup for the payment-path tests: a funded wallet with Payments on a test mint, a
// simulated Routstr provider, and a way to pay it the way the router will.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { world, fundNow, openContext } from '../world.ts';
import { startProvider, requiredMsat, type ModelSpec, type ProviderKnobs, type TestProvider } from '../../world/provider.ts';
import type { MintOptions } from '../../world/mint.ts';
import { Payments, type PaymentsOptions, type TakeTokenRequest } from '../../../wallet/payments/index.ts';
import { InlineSwapEngine, WorkerSwapEngine } from '../../../wallet/swap/engine.ts';
import { verifyInvariant } from '../../../wallet/invariant.ts';
import type { WalletContext } from '../../../wallet/context.ts';

export const MODEL: ModelSpec = { id: 'tiny', promptSatsPerToken: 0.01, completionSatsPerToken: 0.05, contextLength: 1000, maxCompletionTokens: 200 };

export interface PaymentsWorldOptions {
  mint?: Partial<MintOptions>;
  fundSat?: number;
  engine?: 'inline' | 'worker';
  payments?: Omit<PaymentsOptions, 'engine'>;
}

export async function paymentsWorld(t: TestContext, o: PaymentsWorldOptions = {}) {
  const w = await world(t, o.mint);
  if (o.fundSat) await fundNow(w.ctx, w.ln, o.fundSat);
  const payments = newPayments(t, w.ctx, o);
  return { ...w, payments, dbFile: path.join(w.dir, 'satroute.db') };
}

/** A Payments on an existing context (e.g. the same database after a "restart"). */
export function newPayments(t: TestContext, ctx: WalletContext, o: Pick<PaymentsWorldOptions, 'engine' | 'payments'> = {}): Payments {
  const engine = o.engine === 'worker' ? new WorkerSwapEngine() : new InlineSwapEngine();
  // No background refills unless a test asks: they hold proofs pending while balances are checked.
  const payments = new Payments(ctx, { fetch: (url, init) => fetch(url, init), autoRefill: false, ...o.payments, engine });
  t.after(() => payments.stop());
  return payments;
}

export { openContext };

/** A provider URL nothing answers on, for payments whose provider is never asked. */
export const NOWHERE = 'http://127.0.0.1:9';

/** takeToken with positional arguments, to a provider that never answers unless one is given. */
export function take(payments: Payments, mint: string, amountSat: number, paymentId: string, extra: Partial<TakeTokenRequest> = {}) {
  return payments.takeToken({ paymentId, mint, amountSat, providerUrl: NOWHERE, ...extra });
}

export async function testProvider(t: TestContext, mintUrl: string, knobs: Partial<ProviderKnobs> = {}): Promise<TestProvider> {
  const provider = await startProvider({ name: 'p1', relays: [], mints: [mintUrl], models: [MODEL], knobs, noAnnounce: true });
  t.after(() => provider.stop());
  return provider;
}

export const chatBody = (maxTokens = 50) => ({ model: MODEL.id, max_tokens: maxTokens, messages: [{ role: 'user', content: 'Say hello to the test world.' }] });

/** The sats a provider asks for this body (402 threshold), rounded up. */
export function requiredSat(body = chatBody()): number {
  return Math.ceil(requiredMsat(MODEL, body) / 1000);
}

/** POST a paid chat request with X-Cashu, as the router does. */
export async function payProvider(provider: TestProvider, token: string, body: Record<string, unknown> = chatBody()) {
  const res = await fetch(`${provider.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'X-Cashu': token },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, change: res.headers.get('x-cashu'), body: json };
}

/** The money invariant holds (funded - paid - fees - losses = unspent + pending), per mint. */
export async function assertBooksBalance(ctx: WalletContext): Promise<void> {
  const report = await verifyInvariant(ctx);
  assert.deepEqual(report.differences, [], report.differences.join('\n'));
}

export function balanceOf(ctx: WalletContext, mint: string): { unspent: number; pending: number } {
  const b = ctx.store.balances().find((r) => r.mint === ctx.mints.assertTrusted(mint) && r.unit === 'sat');
  return { unspent: b?.unspent ?? 0, pending: b?.pending ?? 0 };
}

/** Mint requests since `before` (a requestCounts() snapshot). */
export function mintCallsSince(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

/**
 * The inline engine with a gate before the mint call: `hold()` makes the next swaps wait at the
 * gate (`reached` resolves when one arrives) until `release()`, so a test can act while a swap is out.
 */
export class GatedEngine extends InlineSwapEngine {
  private gate: { reached: () => void; open: Promise<void> } | null = null;

  hold(): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    this.gate = { reached, open: new Promise<void>((r) => (release = r)) };
    return { reached: reachedP, release: () => { this.gate = null; release(); } };
  }

  override async complete(req: Parameters<InlineSwapEngine['complete']>[0]) {
    const gate = this.gate;
    if (gate) {
      gate.reached();
      await gate.open;
    }
    return super.complete(req);
  }
}
