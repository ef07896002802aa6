// Which mint a token is drawn from: among the mints a provider accepts, the one we hold the
// most at (enough for the token and its input fee), written into the token in the provider's
// own spelling - a node compares mint URLs as exact strings (ROUTSTR.md section 3) - while the
// wallet keys its balances by the normalised URL.
import { normalizeMintUrl } from '@cashu/cashu-ts';
import type { Offer } from '../market-index.ts';

/** Why no mint fits: 0 none in common, 1 not enough at any. */
export type NoMint = 0 | 1;

export class MintChooser {
  // provider spelling -> normalised URL (null: not a URL)
  private readonly keys = new Map<string, string | null>();

  /**
   * The provider's spelling of the accepted mint we hold the most at (enough for the token and
   * its fee), or why none fits. No allocation: this runs for every offer of a model.
   */
  pick(offer: Offer, reserveMsat: number, balances: ReadonlyMap<string, number>, feeSat?: (mint: string) => number): string | NoMint {
    let best: string | undefined;
    let bestBalance = -1;
    let common = false;
    for (const spelling of offer.mints) {
      const mint = this.key(spelling);
      if (mint === null) continue;
      const balance = balances.get(mint);
      if (balance === undefined) continue;
      common = true;
      const needMsat = reserveMsat + (feeSat ? feeSat(mint) * 1000 : 0);
      if (balance * 1000 >= needMsat && balance > bestBalance) {
        best = spelling;
        bestBalance = balance;
      }
    }
    if (best !== undefined) return best;
    return common ? 1 : 0;
  }

  /** A provider's spelling of a mint URL, normalised as the wallet keys its balances (cached); null if it is no URL. */
  key(spelling: string): string | null {
    let key = this.keys.get(spelling);
    if (key === undefined) {
      try {
        key = normalizeMintUrl(spelling);
      } catch {
        key = null;
      }
      this.keys.set(spelling, key);
    }
    return key;
  }
}
