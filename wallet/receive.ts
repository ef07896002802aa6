// Receiving a Cashu token: refuse untrusted mints before any network call, decode with the
// mint's keysets (cashuB carries short keyset ids), then swap it in through the swap service
// (purpose 'receive': its DLEQ checks run on the swap engine, off the main thread, and a swap
// whose answer is lost is resumed like every other).
import { getTokenMetadata, type Token } from '@cashu/cashu-ts';
import type { WalletContext } from './context.ts';
import { InvalidTokenError, MintRejectedError, MintUnavailableError, WalletError } from './errors.ts';
import { NUT_CODE } from './mints.ts';
import { sumAmounts } from './store.ts';
import type { PurposeHandler, SwapService } from './swap/service.ts';
import { toProofJson } from './swap/steps.ts';

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
 * The 'receive' purpose's bookkeeping: the token's face value credited (`receive`, ref = the
 * caller's ref or the swap id) and the mint's input fee debited (`mint_fee`); a swap that cannot be
 * told or restored after a lost answer is credited and written off with the evidence.
 */
export function receiveHandler(ctx: WalletContext): PurposeHandler {
  return {
    done: (swap, r) => {
      ctx.ledger.record({ kind: 'receive', mint: swap.mint, unit: swap.unit, amount: r.foreignAmount, ref: swap.ref ?? swap.id, evidence: { swap: swap.id, ...(r.restored ? { restored: true } : {}) } });
      ctx.ledger.record({ kind: 'mint_fee', mint: swap.mint, unit: swap.unit, amount: -r.fee, ref: swap.id, evidence: { swap: swap.id, purpose: 'receive', inputs: r.foreignAmount, outputs: r.amount } });
    },
    rejected: () => {}, // nothing happened: the token was never ours
    lost: (swap, evidence) => {
      ctx.ledger.record({ kind: 'receive', mint: swap.mint, unit: swap.unit, amount: swap.inputsAmount, ref: swap.ref ?? swap.id, evidence: { swap: swap.id } });
      ctx.ledger.record({ kind: 'loss', mint: swap.mint, unit: swap.unit, amount: -swap.inputsAmount, ref: swap.id, evidence });
      ctx.logger.error('received token lost', { swap: swap.id, mint: swap.mint, amount: swap.inputsAmount });
    },
  };
}

/**
 * Swap a token into the wallet. UntrustedMintError for a mint not in the trusted list;
 * InvalidTokenError for a malformed token, bad DLEQ, or one made of our own proofs; MintRejectedError (code 11001) if it was
 * already spent; MintUnavailableError when the mint gave no answer (the swap stays prepared and
 * recovery finishes it).
 */
export async function receiveToken(ctx: WalletContext, swaps: SwapService, token: string, opts: { ref?: string } = {}): Promise<ReceiveResult> {
  const t = await decodeToken(ctx, token);
  if (t.proofs.length === 0) throw new InvalidTokenError('the token holds no proofs');
  // A token we sent out (or its echo) is already counted: receiving it would count it twice.
  if (t.proofs.some((p) => ctx.store.get(p.secret))) throw new InvalidTokenError('this token is made of the wallet\'s own proofs (one it sent out); it is already counted');
  const outcome = await swaps.start({ mint: t.mint, unit: t.unit, purpose: 'receive', ref: opts.ref ?? null, foreign: t.proofs.map(toProofJson) });
  switch (outcome.status) {
    case 'done':
      ctx.logger.info('token received', { mint: t.mint, unit: t.unit, amount: outcome.foreignAmount, fee: outcome.fee });
      return { mint: t.mint, unit: t.unit, amount: outcome.foreignAmount, fee: outcome.fee, received: outcome.amount, swapId: outcome.swapId };
    case 'rejected': {
      const f = outcome.failure;
      const code = f.kind === 'rejected' ? f.mintCode : undefined;
      // Refused before any swap: a keyset the mint does not list makes the token itself invalid here.
      if (f.kind === 'invalid' || (outcome.swapId === null && code === NUT_CODE.KEYSET_UNKNOWN)) throw new InvalidTokenError(`token refused before the swap: ${f.message}`);
      if (code === NUT_CODE.PROOFS_ALREADY_SPENT) throw new MintRejectedError(`this token (${sumAmounts(t.proofs)} ${t.unit}) was already spent`, code);
      throw new MintRejectedError(f.message, code);
    }
    case 'retry':
      throw new MintUnavailableError(t.mint, new Error(`${outcome.failure.message}; the swap resumes when the mint answers`));
    case 'lost':
      throw new WalletError(`the swap of this token went unanswered and cannot be restored; recorded as lost (swap ${outcome.swapId})`);
  }
}
