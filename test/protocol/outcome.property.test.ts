// Hostile input for the answer classifier: any status, body and headers a provider (or
// something in front of it) sends. Never a throw; a top-up only from the node's exact
// minimum_balance_required answer; no amount, token or wait that did not come from the answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { classifyAnswer, type AnswerInput } from '../../protocol/outcome.ts';
import { assertProperty } from '../property.ts';
import { numberish } from './arbitraries.ts';

const SENT = 'cashuBo2FteBxodHRwOi8vbWludC5leGFtcGxlOjMzMzhhdWNzYXRhdIGiYWlIAL6qjzL4ZM1hcIOkYWEB';
const OTHER = 'cashuBo2FteBxodHRwOi8vbWludC5leGFtcGxlOjMzMzhhdWNzYXRhdIGiYWlIAL6qjzL4ZM1hcIOkYWEC';
const DAY_MS = 24 * 3600_000;

const any = fc.oneof({ weight: 2, arbitrary: numberish }, { weight: 2, arbitrary: fc.string({ maxLength: 30 }) }, { weight: 1, arbitrary: fc.anything() });
const tokenish = fc.oneof(fc.constantFrom(SENT, OTHER, 'cashuA', '', 'garbage'), fc.string({ maxLength: 80 }));
const typeArb = fc.oneof(
  fc.constantFrom('minimum_balance_required', 'insufficient_quota', 'upstream_error', 'internal_error', 'token_consumed', 'api_error', 'invalid_model', 'rate_limit_exceeded'),
  any,
);
const codeArb = fc.oneof(fc.constantFrom('cashu_token_already_spent', 'cashu_token_zero_value', 'cashu_token_consumed', 'UPSTREAM_RATE_LIMIT', 'insufficient_balance', 429, 402, 500, 200), any);
const errorObj = fc.record(
  { message: any, type: typeArb, code: codeArb, refund_token: fc.oneof(tokenish, any), details: fc.oneof(fc.record({ retry_after_seconds: any }, { requiredKeys: [] }), any) },
  { requiredKeys: [] },
);
const detailObj = fc.oneof(
  fc.record({ reason: any, amount_required_msat: fc.oneof(fc.nat(), any), model: any, type: typeArb, error: fc.oneof(errorObj, any) }, { requiredKeys: [] }),
  any,
);
/** Bodies in every routstr error shape, mixed and mangled, and junk. */
const bodyArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ detail: detailObj, error: fc.oneof(errorObj, any), request_id: any }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.jsonValue() },
  { weight: 1, arbitrary: fc.constant(undefined) },
);
const inputArb: fc.Arbitrary<AnswerInput> = fc.record({
  status: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(200, 400, 401, 402, 403, 404, 413, 422, 425, 429, 500, 502, 503) }, { weight: 1, arbitrary: fc.integer({ min: 100, max: 999 }) }),
  body: bodyArb,
  bodyText: fc.oneof(fc.string({ maxLength: 100 }), fc.constant(`{"refund_token":"${SENT}"}`), fc.string({ minLength: 3000, maxLength: 3100 })),
  xCashu: fc.option(tokenish, { nil: undefined }),
  requestId: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
  retryAfterHeader: fc.option(fc.oneof(fc.nat().map(String), fc.double().map(String), fc.date({ noInvalidDate: true }).map((d) => d.toUTCString()), fc.string({ maxLength: 30 }), fc.constant('9'.repeat(400))), { nil: undefined }),
  paidWith: fc.constantFrom('xcashu' as const, 'bearer' as const),
  sentToken: fc.constantFrom(SENT, undefined),
  nowMs: fc.integer({ min: 0, max: 4_000_000_000_000 }),
});

const obj = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

test('any status, body and headers are classified without a throw, and a top-up comes only from the node\'s exact minimum_balance_required answer', () => {
  assertProperty(
    fc.property(inputArb, (a) => {
      const r = classifyAnswer(a);
      const detail = obj(obj(a.body)?.detail);
      if (r === null) {
        assert.equal(a.status, 200, 'only a 200 is an answer');
        return;
      }
      assert.equal(r.status, a.status);
      if (r.kind === 'need_more') {
        assert.ok(a.status === 402 || a.status === 413, `need_more from a ${a.status}`);
        assert.equal(detail?.type, 'minimum_balance_required');
        assert.equal(r.token, 'unspent');
        if (r.amountRequiredMsat !== null) {
          assert.ok(Number.isSafeInteger(r.amountRequiredMsat) && r.amountRequiredMsat > 0);
          assert.equal(r.amountRequiredMsat, detail?.amount_required_msat, 'the amount is the one the node wrote');
        }
        if (r.changeToken !== undefined) assert.ok(r.changeToken === a.xCashu && r.changeToken !== a.sentToken);
      } else {
        assert.ok(!('amountRequiredMsat' in r));
      }
      if (r.retryAfterMs !== undefined) assert.ok(Number.isSafeInteger(r.retryAfterMs) && r.retryAfterMs >= 0 && r.retryAfterMs <= DAY_MS, `retryAfterMs ${r.retryAfterMs}`);
      if (r.kind === 'upstream_error') {
        assert.ok(Number.isSafeInteger(r.upstreamStatus));
        if (r.refundToken !== undefined) {
          const said = [obj(obj(a.body)?.error)?.refund_token, obj(obj(detail)?.error)?.refund_token, a.xCashu];
          assert.ok(said.includes(r.refundToken), 'a refund token is one the answer carried');
          assert.equal(r.token, 'refunded');
        }
      }
      if (r.kind === 'rejected_echo') assert.ok(a.paidWith === 'xcashu' && r.echoedToken === a.xCashu && r.echoMatches === (a.xCashu === a.sentToken));
      if (a.paidWith === 'bearer') assert.ok(r.token === 'none' || r.kind === 'need_more', `a balance-mode answer moved a token: ${r.kind}/${r.token}`);
      if (r.message !== undefined) assert.ok(r.message.length <= 303 && !r.message.includes(SENT));
      if (r.kind === 'internal_error') assert.ok(r.evidence.length <= 2003 && !r.evidence.includes(SENT), 'evidence is clipped and redacted');
    }),
    { seed: 1331, numRuns: 1500 },
  );
});

test('the minimum_balance_required body under any status but 402 or 413 is never a top-up', () => {
  assertProperty(
    fc.property(fc.integer({ min: 100, max: 999 }).filter((s) => s !== 402 && s !== 413), fc.nat(), fc.constantFrom('xcashu' as const, 'bearer' as const), (status, amount, paidWith) => {
      const body = { detail: { reason: 'Insufficient balance', amount_required_msat: amount, model: 'm', type: 'minimum_balance_required' } };
      const r = classifyAnswer({ status, body, bodyText: JSON.stringify(body), paidWith, sentToken: SENT, nowMs: 0 });
      assert.notEqual(r?.kind, 'need_more');
    }),
    { seed: 1332, numRuns: 300 },
  );
});
