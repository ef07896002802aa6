// Hostile input for `satroute wallet receive <token>`: whatever is pasted is received once (a
// genuine token), or refused with a WalletError saying why - never an untyped error - and the
// balance grows by exactly what was received.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { getEncodedToken, Wallet } from '@cashu/cashu-ts';
import { outsideToken, testMint, walletOn, world } from './world.ts';
import { WalletError } from '../../wallet/errors.ts';
import { verifyInvariant } from '../../wallet/invariant.ts';
import { assertAsyncProperty } from '../property.ts';

test('any pasted token is received once or refused with a WalletError, and the balance grows by exactly what came in', async (t) => {
  const w0 = await world(t);
  const { ln, mint } = w0;
  const wallet = walletOn(t, w0);
  const ctx = wallet.ctx;
  const other = await testMint(t, ln);
  const token = await outsideToken(ln, mint.url, 21);
  const w = new Wallet(mint.url);
  await w.loadMint();
  const proofs = w.decodeToken(token).proofs;
  const text = fc.oneof(
    fc.string({ maxLength: 120 }),
    fc.base64String({ maxLength: 200 }).map((b) => `cashuB${b}`),
    fc.nat({ max: token.length }).map((n) => token.slice(0, n)),
    fc.constantFrom('usd', 'msat', 'SAT', '').map((unit) => getEncodedToken({ mint: mint.url, proofs, unit })),
    fc.constantFrom('https://evil.example', other.url, 'not a url').map((m) => getEncodedToken({ mint: m, proofs })),
    fc.constant(getEncodedToken({ mint: mint.url, proofs: proofs.map((p) => ({ ...p, C: `02${'11'.repeat(32)}` })) })),
    fc.constant(getEncodedToken({ mint: mint.url, proofs: [] })),
    fc.constantFrom(token, ` ${token}\n`),
  );
  let received = 0;
  await assertAsyncProperty(
    fc.asyncProperty(text, async (s) => {
      try {
        const r = await wallet.receive(s);
        assert.ok(Number.isSafeInteger(r.received) && r.received > 0);
        received += r.received;
      } catch (err) {
        assert.ok(err instanceof WalletError, `not a WalletError: ${(err as Error)?.stack ?? String(err)}`);
        assert.ok(err.message.length < 500);
      }
    }),
    { seed: 1431, numRuns: 60 },
  );
  assert.ok(received <= 21, 'the genuine token came in at most once');
  const unspent = ctx.store.balances().reduce((a, b) => a + b.unspent, 0);
  assert.equal(unspent, received);
  assert.deepEqual((await verifyInvariant(ctx)).differences, []);
});
