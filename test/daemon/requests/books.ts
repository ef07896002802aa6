// "Every sat accounted for": the check every request-path test ends with. It waits for the money
// work the request path left running (reclaims, the change queue), then runs `audit verify`'s
// two halves: the wallet's invariant (asking the mints, NUT-07, about every proof counted as
// unspent) and the request ledger's per-request consistency with the wallet's payments.
import assert from 'node:assert/strict';
import type { DB } from '../../../db/sqlite.ts';
import type { CashuWallet } from '../../../wallet/index.ts';
import type { Payments } from '../../../wallet/payments/index.ts';
import { paymentFactsLookup } from '../../../daemon/requests/payment-facts.ts';
import { verifyRequests } from '../../../daemon/requests/verify.ts';

export async function settleBackground(s: { lifecycle: { idle(): Promise<void> }; payments: Payments }): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await s.lifecycle.idle();
    await s.payments.changeQueue.drain();
  }
}

/** `audit verify` passes: the wallet's money invariant and the request ledger, both without a difference. */
export async function assertAccounted(s: { db: DB; wallet: CashuWallet; payments: Payments; lifecycle: { idle(): Promise<void> } }): Promise<void> {
  await settleBackground(s);
  const wallet = await s.wallet.verify({ checkMints: true });
  assert.deepEqual(wallet.differences, [], `wallet invariant: ${wallet.differences.join('; ')}`);
  const requests = verifyRequests(s.db, paymentFactsLookup(s.payments));
  assert.deepEqual(requests.differences, [], `request ledger: ${requests.differences.join('; ')}`);
}
