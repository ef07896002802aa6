// recieve_token for one paid request (routstr-core v0.4.5 wallet.py): a token naming more than
// one keyset is refused; its mint is compared with the node's mints as exact strings; a
// foreign one is swapped over Lightning (or refused, by the foreignMint knob); then the whole
// token is swapped at its mint. And the answer to a failed redemption, by node version.
import { getTokenMetadata } from '@cashu/cashu-ts';
import { swapToPrimary } from './cross-mint.ts';
import { redeemError, RedeemError } from './errors.ts';
import { errorBody } from './http.ts';
import type { Purse, Redeemed } from './purse.ts';
import { tokenKeysetIds } from './token.ts';
import type { ProviderKnobs } from './types.ts';
import type { VersionBehaviour } from './version.ts';

export async function redeemToken(purse: Purse, knobs: ProviderKnobs, token: string): Promise<Redeemed> {
  let keysets: string[];
  try {
    keysets = tokenKeysetIds(token);
  } catch {
    throw redeemError.invalid('Invalid token format');
  }
  if (keysets.length > 1) throw redeemError.failed('Multiple keysets per token currently not supported');
  const meta = getTokenMetadata(token);
  const unit = meta.unit ?? 'sat';
  // `token_obj.mint not in destinations`: a trailing slash, another case or an explicit
  // default port makes it a foreign mint.
  if (!knobs.acceptedMints.includes(meta.mint)) {
    // 'refuse' is the swap whose Lightning payment the foreign mint could not make (NUT code 20004).
    if (knobs.foreignMint === 'refuse' || knobs.acceptedMints.length === 0) {
      throw redeemError.foreignSwapFailed(`Failed to melt token from foreign mint ${meta.mint}: Mint Error: Could not pay invoice. (Code: 20004)`);
    }
    return swapToPrimary(purse, token, { mint: meta.mint, unit, amount: meta.amount.toNumber() }, knobs.acceptedMints[0]);
  }
  return purse.redeem(token, meta.mint, unit);
}

export interface FailureAnswer {
  status: number;
  body: Record<string, unknown>;
  /** Send the original token back in X-Cashu. */
  echo: boolean;
}

/**
 * The answer to a failed redemption: classify_redemption_error's (v0.4.4 on: sanitised message,
 * stable code, the token echoed only while spendable) or the older string matching, which put
 * the raw error in the message, used the status as code and always echoed the token.
 */
export function redemptionFailure(err: RedeemError, behaviour: VersionBehaviour, requestId: string): FailureAnswer {
  if (behaviour.classifiedRedemptionErrors) {
    return { status: err.status, body: errorBody(err.type, err.message, err.code, requestId), echo: err.echo };
  }
  const detail = err.detail.toLowerCase();
  const legacy = (type: string, message: string, status: number): FailureAnswer => ({ status, body: errorBody(type, message, status, requestId), echo: true });
  if (detail.includes('already spent')) return legacy('token_already_spent', 'The provided CASHU token has already been spent', 400);
  if (detail.includes('invalid token')) return legacy('invalid_token', 'The provided CASHU token is invalid', 400);
  if (detail.includes('mint error')) return legacy('mint_error', `CASHU mint error: ${err.detail}`, 422);
  return legacy('cashu_error', `CASHU token processing failed: ${err.detail}`, 400);
}

export { RedeemError };
