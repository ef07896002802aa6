// Receiving a Cashu token: refuse untrusted mints before any network call, decode with the
// mint's keysets (cashuB carries short keyset ids), then swap it in (wallet/swap.ts).
import { getTokenMetadata, type Token } from '@cashu/cashu-ts';
import type { WalletContext } from './context.ts';
import { InvalidTokenError, MintRejectedError } from './errors.ts';
import { NUT_CODE } from './mints.ts';
import { sumAmounts } from './store.ts';
import { swapForeign, type ForeignPurpose } from './swap.ts';

export interface ReceiveResult {
  mint: string;
  unit: string;
  /** Face value of the token. */
  amount: number;
  /** Input fee the mint kept on the swap. */
  fee: number;
  /** What was added to the balance: amount - fee. */
  received: number;
  swapId: string;
}

/** Mint URL and unit of a token without touching the network. */
export function peekToken(token: string): { mint: string; unit: string } {
  try {
    const meta = getTokenMetadata(token.trim());
    return { mint: meta.mint, unit: meta.unit ?? 'sat' };
  } catch (err) {
    throw new InvalidTokenError(`not a Cashu token: ${(err as Error).message}`);
  }
}

/** Decode a token with the keysets of its (trusted) mint, reloading them once if needed. */
export async function decodeToken(ctx: WalletContext, token: string): Promise<Token & { mint: string; unit: string }> {
  const { mint: rawMint, unit } = peekToken(token);
  const mint = ctx.mints.assertTrusted(rawMint);
  let lastErr: unknown;
  for (const force of [false, true]) {
    const w = force ? await ctx.mints.refresh(mint, unit, true) : await ctx.mints.wallet(mint, unit);
    try {
      const t = w.decodeToken(token.trim());
      return { ...t, mint, unit: t.unit ?? unit };
    } catch (err) {
      lastErr = err;
    }
  }
  throw new InvalidTokenError(`cannot decode the token with the keysets of ${mint}: ${(lastErr as Error).message}`);
}

/**
 * Swap a token into the wallet. UntrustedMintError for a mint not in the trusted list;
 * InvalidTokenError for a malformed token or bad DLEQ; MintRejectedError (code 11001) if it
 * was already spent.
 */
export async function receiveToken(ctx: WalletContext, token: string, opts: { purpose?: ForeignPurpose; ref?: string } = {}): Promise<ReceiveResult> {
  const t = await decodeToken(ctx, token);
  if (t.proofs.length === 0) throw new InvalidTokenError('the token holds no proofs');
  try {
    const r = await swapForeign(ctx, { mint: t.mint, unit: t.unit, proofs: t.proofs, purpose: opts.purpose ?? 'receive', ref: opts.ref });
    ctx.logger.info('token received', { mint: t.mint, unit: t.unit, amount: r.inputAmount, fee: r.fee });
    return { mint: t.mint, unit: t.unit, amount: r.inputAmount, fee: r.fee, received: r.inputAmount - r.fee, swapId: r.swapId };
  } catch (err) {
    if (err instanceof MintRejectedError && err.mintCode === NUT_CODE.PROOFS_ALREADY_SPENT) {
      throw new MintRejectedError(`this token (${sumAmounts(t.proofs)} ${t.unit}) was already spent`, err.mintCode);
    }
    throw err;
  }
}
