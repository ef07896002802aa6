// routstr-core v0.4.5's swap_to_trusted_mint: a token whose mint URL is not, as an exact
// string, one of the node's mints is melted at its own mint over Lightning into a mint quote of
// the node's primary mint. The payer bears the cost: the melt's fee reserve and the input fees
// come off the credited amount (unused fee reserve comes back to the node as melt change and
// stays there), and the extra mint round trips and the Lightning payment take time. Change for
// the request is then issued at the primary mint, in its unit (sat).
import { Amount, MintOperationError, type MeltQuoteBolt11Response, type Wallet } from '@cashu/cashu-ts';
import { classifyText, isRateLimited, mintErrorText, redeemError, RedeemError, transportFailure } from './errors.ts';
import { classifyMintFailure, MintCooldownError, type Purse, type Redeemed } from './purse.ts';

const MAX_SWAP_ATTEMPTS = 3; // wallet.py _MAX_SWAP_ATTEMPTS
const PRIMARY_UNIT = 'sat'; // settings.primary_mint_unit default

const num = (a: Parameters<typeof Amount.from>[0]) => Amount.from(a).toNumber();
const toMsat = (amount: number, unit: string) => (unit === 'msat' ? amount : amount * 1000);
/** _net_minted_amount: the token's value less `fees` (token unit), in the primary unit, rounded down. */
const netMinted = (amountMsat: number, unit: string, fees: number) => Math.floor((amountMsat - toMsat(fees, unit)) / 1000);

/** Swap a foreign token into the node's primary mint; returns what was credited there. */
export async function swapToPrimary(purse: Purse, token: string, source: { mint: string; unit: string; amount: number }, primary: string): Promise<Redeemed> {
  const { wallet: src, proofs } = await purse.resolve(token, source.mint, source.unit);
  const amountMsat = toMsat(source.amount, source.unit);
  const receive = Math.floor(amountMsat / 1000);
  if (receive <= 0) throw redeemError.failed(`Token amount (${amountMsat} msat, unit=${source.unit}) is too small to swap to primary mint`);
  const dest = await destination(purse, primary);
  const inputFees = src.getFeesForProofs(proofs).toNumber();

  // _calculate_swap_amount: a throwaway quote pair to learn the source mint's fee reserve.
  let minted: number;
  try {
    const estimate = await mintQuote(purse, dest, primary, receive);
    const melt = await meltQuote(purse, src, source.mint, estimate.request);
    minted = netMinted(amountMsat, source.unit, num(melt.fee_reserve) + inputFees);
    if (minted <= 0) throw new Error(`Fees (${num(melt.fee_reserve) + inputFees} ${source.unit}) exceed token amount`);
  } catch (err) {
    if (err instanceof RedeemError) throw err;
    throw classifyText(`Failed to estimate fees: ${(err as Error).message}`, true);
  }

  let quote: { quote: string; request: string } | undefined;
  for (let attempt = 1; ; attempt++) {
    quote = await mintQuote(purse, dest, primary, minted);
    const melt = await meltQuote(purse, src, source.mint, quote.request);
    const needed = num(melt.amount) + num(melt.fee_reserve) + inputFees;
    if (needed > source.amount) {
      const recomputed = netMinted(amountMsat, source.unit, num(melt.fee_reserve) + inputFees);
      if (attempt >= MAX_SWAP_ATTEMPTS || recomputed <= 0) {
        throw classifyText(`Token amount (${source.amount} ${source.unit}) is insufficient to cover melt fees. Needed: ${needed} ${source.unit}`, true);
      }
      minted = recomputed;
      continue;
    }
    await melted(purse, src, source, melt, proofs);
    break;
  }

  // The source proofs are gone now: any failure to mint at the primary loses the token.
  try {
    const fresh = await purse.run(primary, () => dest.mintProofsBolt11(minted, quote!.quote));
    purse.pool(primary, PRIMARY_UNIT).push(...fresh);
  } catch {
    throw redeemError.consumed('Mint on primary failed after successful melt');
  }
  return { mint: primary, unit: PRIMARY_UNIT, amount: minted };
}

async function destination(purse: Purse, primary: string): Promise<Wallet> {
  try {
    return await purse.wallet(primary, PRIMARY_UNIT);
  } catch {
    throw redeemError.unreachable('All mints failed for swap_request_mint');
  }
}

/** _request_mint_with_fallback at the primary: a transport failure or 429 there is "Cashu mint is unreachable". */
async function mintQuote(purse: Purse, dest: Wallet, primary: string, amount: number): Promise<{ quote: string; request: string }> {
  try {
    return await purse.run(primary, () => dest.createMintQuoteBolt11(amount));
  } catch (err) {
    if (transportFailure(err) || isRateLimited(err) || err instanceof MintCooldownError) throw redeemError.unreachable(`All mints failed for swap_request_mint`);
    throw err;
  }
}

/** The source mint's melt quote; its mint being unreachable means the token cannot move. */
async function meltQuote(purse: Purse, src: Wallet, mint: string, invoice: string): Promise<MeltQuoteBolt11Response> {
  try {
    return await purse.run(mint, () => src.createMeltQuoteBolt11(invoice));
  } catch (err) {
    if (transportFailure(err)) throw redeemError.sourceUnreachable();
    if (isRateLimited(err) || err instanceof MintCooldownError) throw redeemError.rateLimited();
    throw err;
  }
}

/** The melt itself: a failed Lightning payment leaves the token spendable; an unknown outcome consumes it. */
async function melted(purse: Purse, src: Wallet, source: { mint: string; unit: string }, melt: MeltQuoteBolt11Response, proofs: Parameters<Wallet['meltProofsBolt11']>[1]): Promise<void> {
  try {
    const res = await purse.run(source.mint, () => src.meltProofsBolt11(melt, proofs));
    purse.pool(source.mint, source.unit).push(...res.change);
  } catch (err) {
    // _melt_definitively_failed: the mint said it could not pay (20004), so the proofs are released.
    if (err instanceof MintOperationError && err.code === 20004) throw redeemError.foreignSwapFailed(`Failed to melt token from foreign mint ${source.mint}: ${mintErrorText(err)}`);
    const failure = classifyMintFailure(err, 'Source melt failed after dispatch; outcome requires reconciliation');
    // A rate-limited or refused melt never reached the mint.
    if (failure.code === 'cashu_mint_rate_limited' || failure.code === 'cashu_source_mint_unreachable') throw failure;
    // _reconcile_ambiguous_melt: a lost answer is fine if the quote says PAID; anything else is ambiguous.
    if (transportFailure(err) === 'lost') {
      const state = await src.checkMeltQuoteBolt11(melt.quote).then((q) => q.state, () => 'UNKNOWN');
      if (state === 'PAID') return;
    }
    throw redeemError.consumed('Source melt outcome is ambiguous; reconciliation required');
  }
}
