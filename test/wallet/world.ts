// Shared setup for wallet tests: a test mint on simulated Lightning and a wallet context on a
// fresh SQLite file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { Wallet, getEncodedToken } from '@cashu/cashu-ts';
import { LightningNetwork } from '../world/lightning.ts';
import { startMint, type MintOptions, type TestMint } from '../world/mint.ts';
import { openDatabase, type DB } from '../../db/sqlite.ts';
import { createWalletContext, type WalletContext } from '../../wallet/context.ts';
import { createFundingQuote, waitForFunding } from '../../wallet/funding.ts';
import { CashuWallet } from '../../wallet/index.ts';
import { InlineSwapEngine } from '../../wallet/swap/engine.ts';

export function tempDir(t: TestContext, prefix = 'satroute-wallet-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function testMint(t: TestContext, ln: LightningNetwork, opts: Partial<MintOptions> = {}): Promise<TestMint> {
  const mint = await startMint({ lightning: ln, ...opts });
  t.after(() => mint.stop());
  return mint;
}

export function openContext(file: string, trusted: string[]): WalletContext & { db: DB } {
  return createWalletContext(openDatabase(file, { synchronous: 'NORMAL' }), { mints: trusted });
}

/** A CashuWallet on this context's database (swaps inline), stopped when the test ends. */
export function walletOn(t: TestContext, w: { ctx: WalletContext; dir: string; mint: { url: string } }): CashuWallet {
  const wallet = new CashuWallet({ db: w.ctx.db, dataDir: w.dir, mints: [w.mint.url], engine: new InlineSwapEngine() });
  t.after(() => wallet.stop());
  return wallet;
}

export async function world(t: TestContext, opts: Partial<MintOptions> = {}) {
  const ln = new LightningNetwork();
  const mint = await testMint(t, ln, opts);
  const dir = tempDir(t);
  const ctx = openContext(path.join(dir, 'satroute.db'), [mint.url]);
  t.after(() => ctx.db.close());
  return { ln, mint, dir, ctx };
}

/** A token minted by someone else's wallet at this mint (paid over Lightning). */
export async function outsideToken(ln: LightningNetwork, mintUrl: string, amount: number, unit = 'sat'): Promise<string> {
  const w = new Wallet(mintUrl, { unit });
  await w.loadMint();
  const q = await w.createMintQuoteBolt11(amount);
  ln.pay(q.request);
  const proofs = await w.mintProofsBolt11(amount, q.quote);
  return getEncodedToken({ mint: mintUrl, proofs, unit });
}

/** Fund a wallet context by invoice, paid at once. */
export async function fundNow(ctx: WalletContext, ln: LightningNetwork, amount: number, mint?: string): Promise<void> {
  const q = await createFundingQuote(ctx, amount, { mint });
  ln.pay(q.bolt11);
  const done = await waitForFunding(ctx, q.quoteId, { pollMs: 5, timeoutMs: 5000 });
  if (done.state !== 'issued') throw new Error(`funding ended ${done.state}`);
}
