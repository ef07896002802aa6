// Hostile X-Cashu change and refund tokens, as the wallet receives them from a provider:
// garbage, truncated, another unit, another mint, huge, tampered, already spent by its owner.
// Each is refused with a clear error and its evidence (the request flagged change_invalid),
// nothing is retried forever, and no sat moves but those of genuine change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Amount, getEncodedToken, Wallet, type Proof } from '@cashu/cashu-ts';
import { outsideToken, testMint } from '../world.ts';
import { assertBooksBalance, balanceOf, paymentsWorld } from './fixture.ts';
import { assertAsyncProperty, assertProperty } from '../../property.ts';

const REASONS = new Set(['undecodable', 'untrusted_mint', 'wrong_unit', 'empty', 'amount_out_of_range', 'already_spent', 'failed_checks', 'refused', 'duplicate_proofs']);

async function decode(mintUrl: string, token: string): Promise<Proof[]> {
  const w = new Wallet(mintUrl);
  await w.loadMint();
  return w.decodeToken(token).proofs;
}

const encode = (mint: string, proofs: Proof[], unit = 'sat') => getEncodedToken({ mint, proofs, unit });

test('any string handed over as change is queued only when it is a sat token of a trusted mint with a value; anything else is refused at once with its reason', async (t) => {
  const { ln, mint, ctx, payments } = await paymentsWorld(t);
  const other = await testMint(t, ln);
  const token = await outsideToken(ln, mint.url, 13);
  const proofs = await decode(mint.url, token);
  const foreign = await outsideToken(ln, other.url, 5);
  const before = JSON.stringify(ctx.store.balances());
  const withAmount = (amount: bigint) => proofs.map((p, i) => (i ? p : { ...p, amount: Amount.from(amount) }));

  /** A hostile token and the outcomes allowed for it ('queued' or the refusal reasons). */
  type Case = { text: string; allowed: string[] };
  const hostile: fc.Arbitrary<Case> = fc.oneof<fc.Arbitrary<Case>[]>(
    fc.string({ maxLength: 200 }).map((text) => ({ text, allowed: ['undecodable'] })),
    fc.base64String({ maxLength: 300 }).map((b) => ({ text: `cashuB${b}`, allowed: ['undecodable', 'untrusted_mint', 'wrong_unit', 'empty', 'amount_out_of_range'] })),
    fc.nat({ max: token.length - 1 }).map((n) => ({ text: token.slice(0, n), allowed: ['undecodable', 'queued'] })),
    fc.tuple(fc.nat({ max: token.length }), fc.string({ minLength: 1, maxLength: 8 })).map(([k, junk]) => ({ text: token.slice(0, k) + junk + token.slice(k), allowed: ['undecodable', 'queued', 'untrusted_mint', 'wrong_unit', 'empty', 'amount_out_of_range'] })),
    fc.constantFrom('usd', 'msat', 'eur', 'SAT', 'btc').map((unit) => ({ text: encode(mint.url, proofs, unit), allowed: ['wrong_unit'] })),
    fc.constantFrom('https://evil.example', other.url, 'ftp://x', '').map((m) => ({ text: encode(m, proofs), allowed: ['untrusted_mint', 'undecodable'] })),
    fc.constant<Case>({ text: foreign, allowed: ['untrusted_mint'] }),
    fc.constant<Case>({ text: `${mint.url}/`, allowed: ['undecodable'] }),
    fc.constant<Case>({ text: encode(`${mint.url}/`, proofs), allowed: ['queued'] }),
    fc.constantFrom(0n, 2n ** 60n, 2n ** 64n - 1n).map((a) => ({ text: encode(mint.url, withAmount(a)), allowed: a === 0n && proofs.length === 1 ? ['empty'] : ['amount_out_of_range', 'empty', 'queued', 'undecodable'] })),
    fc.constant<Case>({ text: `cashuB${'A'.repeat(200_000)}`, allowed: ['undecodable'] }),
    fc.constant<Case>({ text: encode(mint.url, Array.from({ length: 500 }, () => proofs).flat()), allowed: ['queued'] }),
  );

  let n = 0;
  assertProperty(
    fc.property(hostile, fc.constantFrom('change' as const, 'refund' as const), ({ text, allowed }, kind) => {
      const id = `h${n++}`;
      const row = payments.changeQueue.enqueue(id, kind, text, mint.url, 'sat');
      assert.deepEqual(payments.changeQueue.rowsOf(id), [row], 'the row returned is the row stored');
      const reason = (row.evidence as { reason?: string } | null)?.reason;
      const outcome = row.state === 'queued' ? 'queued' : reason;
      assert.ok(outcome !== undefined && allowed.includes(outcome), `${outcome} not in ${allowed.join('|')} (${row.error})`);
      if (row.state === 'queued') {
        assert.equal(row.unit, 'sat');
        assert.equal(row.mint, ctx.mints.assertTrusted(mint.url));
        assert.ok(Number.isSafeInteger(row.claimed) && row.claimed > 0);
      } else {
        assert.equal(row.state, 'invalid');
        assert.ok(row.error && row.error.length < 200, 'a clear, short error');
        assert.ok(REASONS.has(reason!));
        assert.ok(!row.error.includes(token), 'the token is evidence in its row, not in the error text');
      }
    }),
    { seed: 1371, numRuns: 100 },
  );
  assert.equal(JSON.stringify(ctx.store.balances()), before, 'queuing moves no sat');
});

test('change in another unit or from a mint without that unit is refused, not retried forever', async (t) => {
  const { ln, mint, payments } = await paymentsWorld(t);
  const proofs = await decode(mint.url, await outsideToken(ln, mint.url, 8));
  for (const unit of ['usd', 'msat']) {
    const row = payments.changeQueue.enqueue(`u-${unit}`, 'change', encode(mint.url, proofs, unit), mint.url, 'sat');
    assert.equal(row.state, 'invalid');
    assert.deepEqual(row.evidence, { reason: 'wrong_unit', unit });
  }
  assert.equal(payments.changeQueue.openCount(), 0);
});

type Tamper = 'genuine' | 'spent' | 'amount' | 'secret' | 'signature' | 'repeated_proof' | 'twice';

test('tampered, already-spent and repeated change is refused with the mint\'s answer and genuine change beside it still comes in, to the sat', async (t) => {
  const { ln, mint, ctx, payments } = await paymentsWorld(t);
  let run = 0;
  await assertAsyncProperty(
    fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom<Tamper>('genuine', 'spent', 'amount', 'secret', 'signature', 'repeated_proof', 'twice'), fc.integer({ min: 1, max: 40 })), { minLength: 1, maxLength: 4 }), async (plan) => {
      run++;
      const before = balanceOf(ctx, mint.url).unspent;
      const cases: { id: string; tamper: Tamper; text: string; value: number }[] = [];
      for (const [i, [tamper, amount]] of plan.entries()) {
        const token = await outsideToken(ln, mint.url, amount);
        const proofs = await decode(mint.url, token);
        let text = token;
        if (tamper === 'spent') {
          const owner = new Wallet(mint.url);
          await owner.loadMint();
          await owner.receive(token);
        } else if (tamper === 'amount') text = encode(mint.url, proofs.map((p, k) => (k ? p : { ...p, amount: Amount.from(p.amount.toBigInt() * 2n) })));
        else if (tamper === 'secret') text = encode(mint.url, proofs.map((p, k) => (k ? p : { ...p, secret: `${p.secret.slice(0, -1)}${p.secret.endsWith('0') ? '1' : '0'}` })));
        else if (tamper === 'signature') text = encode(mint.url, proofs.map((p, k) => (k ? p : { ...p, C: `02${'11'.repeat(32)}` })), 'sat');
        else if (tamper === 'repeated_proof') text = encode(mint.url, [...proofs, proofs[0]]);
        cases.push({ id: `r${run}-${i}`, tamper, text, value: amount });
        if (tamper === 'twice') cases.push({ id: `r${run}-${i}b`, tamper, text: encode(mint.url, proofs), value: amount });
      }
      for (const c of cases) payments.changeQueue.enqueue(c.id, 'change', c.text, mint.url, 'sat');
      for (let i = 0; i < 6 && payments.changeQueue.openCount() > 0; i++) await payments.changeQueue.drain();
      assert.equal(payments.changeQueue.openCount(), 0, 'every token settled: none left retrying');
      let gained = 0;
      let genuineValue = 0;
      let twiceReceived = 0;
      for (const c of cases) {
        const [row] = payments.changeQueue.rowsOf(c.id);
        if (c.tamper === 'genuine') genuineValue += c.value;
        if (row.state === 'received') {
          assert.ok(c.tamper === 'genuine' || c.tamper === 'twice', `${c.tamper} change was received`);
          if (c.tamper === 'twice') twiceReceived++;
          gained += row.received!;
        } else {
          assert.equal(row.state, 'invalid', `${c.tamper}: ${row.state}`);
          assert.ok(c.tamper !== 'genuine', `genuine change refused: ${row.error}`);
          assert.ok(REASONS.has((row.evidence as { reason: string }).reason), JSON.stringify(row.evidence));
        }
      }
      // Of the same proofs handed over twice, exactly one copy comes in.
      assert.equal(twiceReceived, plan.filter(([tp]) => tp === 'twice').length);
      const twiceValue = plan.filter(([tp]) => tp === 'twice').reduce((a, [, v]) => a + v, 0);
      assert.equal(balanceOf(ctx, mint.url).unspent - before, gained, 'the balance grew by what was received, no more');
      assert.equal(gained, genuineValue + twiceValue, 'genuine change comes in to the sat (no input fees at this mint)');
    }),
    { seed: 1372, numRuns: 4 },
  );
  await assertBooksBalance(ctx);
});
