// Hostile input for the refund endpoint's answers: any status, any body, a fetch that throws
// or a body that cannot be read. The answer is one of the protocol's four, with a safe amount,
// or a RefundError; polling stays within its bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pollRefund, RefundError, RefundProtocolError, RefundUnavailableError, requestRefund, type FetchLike, type RefundAnswer } from '../../protocol/refund.ts';
import { assertAsyncProperty } from '../property.ts';
import { isSafeAmount, numberish } from './arbitraries.ts';

const PROVIDER = 'http://provider.test';
const TOKEN = 'cashuBo2FteBxodHRwOi8vbWludC5leGFtcGxlOjMzMzhhdWNzYXRhdIGiYWlIAL6qjzL4ZM1hcIOkYWEB';

const amount = fc.oneof({ weight: 2, arbitrary: fc.nat().map(String) }, { weight: 3, arbitrary: numberish }, { weight: 1, arbitrary: fc.constantFrom('9'.repeat(30), '007', '1e3', ' 5') });
const bodyArb = fc.oneof(
  fc.record({ token: fc.oneof(fc.constantFrom(TOKEN, 'cashuA', 'cashu', 'notatoken', ''), fc.anything()), sats: amount, msats: amount }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
  fc.record({ detail: fc.oneof(fc.constantFrom('Refund not found', 'Not Found', 'Refund is pending; retry shortly.'), fc.anything()) }).map((b) => JSON.stringify(b)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 60 }),
);
const answerArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ status: fc.oneof(fc.constantFrom(200, 404, 405, 410, 425, 400, 401, 409, 422, 500, 502, 503), fc.integer({ min: 100, max: 599 })), body: bodyArb, unreadable: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ throws: fc.anything() }) },
);
type Scripted = { status: number; body: string; unreadable: boolean } | { throws: unknown };

/** A fetch that gives the scripted answers in turn (the last one again once they run out). */
function scripted(answers: Scripted[]): { fetch: FetchLike; calls: string[] } {
  const calls: string[] = [];
  const fetch: FetchLike = async (url) => {
    const a = answers[Math.min(calls.length, answers.length - 1)];
    calls.push(url);
    if ('throws' in a) throw a.throws;
    return { status: a.status, headers: { get: () => null }, text: async () => (a.unreadable ? Promise.reject(new Error('connection reset')) : a.body) };
  };
  return { fetch, calls };
}

function assertAnswer(r: RefundAnswer): void {
  assert.ok(['refunded', 'pending', 'not_found', 'swept'].includes(r.kind));
  if (r.kind === 'refunded') {
    assert.ok(r.token.startsWith('cashu'));
    assert.ok(isSafeAmount(r.amount), `amount ${r.amount}`);
    assert.ok(r.unit === 'sat' || r.unit === 'msat');
  }
}

function assertRefundError(err: unknown): void {
  assert.ok(err instanceof RefundUnavailableError || err instanceof RefundProtocolError, `not a RefundError: ${(err as Error)?.stack ?? String(err)}`);
  assert.ok(err instanceof RefundError);
  assert.ok(!err.message.includes(TOKEN), 'the token never appears in the error');
}

test('any answer of the refund endpoint is one of the four outcomes with a safe amount, or a RefundError', async () => {
  await assertAsyncProperty(
    fc.asyncProperty(fc.array(answerArb, { minLength: 1, maxLength: 3 }), async (answers) => {
      const { fetch, calls } = scripted(answers);
      try {
        assertAnswer(await requestRefund(PROVIDER, TOKEN, { fetch }));
      } catch (err) {
        assertRefundError(err);
      }
      assert.ok(calls.length >= 1 && calls.length <= 2, 'the route, then at most its older alias');
    }),
    { seed: 1361, numRuns: 300 },
  );
});

test('polling any sequence of answers ends within its attempts, sleeping between them only', async () => {
  await assertAsyncProperty(
    fc.asyncProperty(fc.array(answerArb, { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 5 }), fc.boolean(), async (answers, maxAttempts, notFoundMeansPending) => {
      const { fetch, calls } = scripted(answers);
      const sleeps: number[] = [];
      try {
        assertAnswer(await pollRefund(PROVIDER, TOKEN, { fetch, maxAttempts, delayMs: 2000, notFoundMeansPending, sleep: async (ms) => void sleeps.push(ms) }));
      } catch (err) {
        assertRefundError(err);
      }
      assert.ok(calls.length <= maxAttempts * 2, `${calls.length} calls for ${maxAttempts} attempts`);
      assert.ok(sleeps.length <= maxAttempts - 1 && sleeps.every((ms) => ms === 2000));
    }),
    { seed: 1362, numRuns: 300 },
  );
});
