// Classifier tests on the literal bodies and headers routstr-core v0.4.5 writes (each quoted),
// including shapes test/world does not produce on this base.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyAnswer, parseRetryAfter, type AnswerInput, type Refusal } from '../../protocol/outcome.ts';

const SENT = 'cashuBo2FteBxodHRwOi8vbWludC5leGFtcGxlOjMzMzhhdWNzYXRhdIGiYWlIAL6qjzL4ZM1hcIOkYWEB';
const REFUND = 'cashuBrefundrefundrefundrefundrefundrefund';
const RID = 'b5c0c7e2-3a1f-4d6e-9a55-1f0a3e2b7c11';

function classify(status: number, body: unknown, extra: Partial<AnswerInput> = {}): Refusal | null {
  return classifyAnswer({ status, body, bodyText: JSON.stringify(body) ?? '', paidWith: 'xcashu', sentToken: SENT, requestId: RID, nowMs: 0, ...extra });
}

test('the node asking for more (402 minimum_balance_required) is need_more with the exact amount; the token was not redeemed', () => {
  // payment/helpers.py check_token_balance -> http_exception_handler: {"detail": detail, "request_id": ...}
  const body = { detail: { reason: 'Insufficient balance', amount_required_msat: 91_238, model: 'gpt-4o-mini', type: 'minimum_balance_required' }, request_id: RID };
  assert.deepEqual(classify(402, body), {
    status: 402,
    requestId: RID,
    errorType: 'minimum_balance_required',
    message: 'Insufficient balance',
    kind: 'need_more',
    token: 'unspent',
    amountRequiredMsat: 91_238,
    model: 'gpt-4o-mini',
  });
});

test('a node older than v0.4.2 says the same with 413, and is read the same way', () => {
  // v0.3.0 payment/helpers.py: raise HTTPException(status_code=413, detail={... "type": "minimum_balance_required"})
  const r = classify(413, { detail: { reason: 'Insufficient balance', amount_required_msat: 5000, model: 'm', type: 'minimum_balance_required' }, request_id: RID });
  assert.equal(r?.kind, 'need_more');
  assert.equal(r?.kind === 'need_more' && r.amountRequiredMsat, 5000);
});

test('a need_more that still carries an X-Cashu token surfaces it as change to bank, unless it is our own token', () => {
  const body = { detail: { amount_required_msat: 5000, type: 'minimum_balance_required' } };
  const r = classify(402, body, { xCashu: 'cashuBsomethingelse' });
  assert.equal(r?.kind === 'need_more' && r.changeToken, 'cashuBsomethingelse');
  const own = classify(402, body, { xCashu: SENT });
  assert.equal(own?.kind === 'need_more' && own.changeToken, undefined);
});

test('a need_more with a nonsense amount is still need_more, with no amount to top up to', () => {
  for (const amount of [-1, '5000', 1.5, 0]) {
    const r = classify(402, { detail: { amount_required_msat: amount, type: 'minimum_balance_required' } });
    assert.equal(r?.kind === 'need_more' && r.amountRequiredMsat, null, String(amount));
  }
});

test('an upstream 402 after redemption is an upstream_error with the refund token, never a top-up', () => {
  // upstream/base.py forward_x_cashu_request: {"error": {"message": "Error forwarding request to upstream",
  //   "type": "upstream_error", "code": response.status_code, "refund_token": refund_token}}; X-Cashu = refund_token
  const body = { error: { message: 'Error forwarding request to upstream', type: 'upstream_error', code: 402, refund_token: REFUND } };
  const r = classify(402, body, { xCashu: REFUND });
  assert.equal(r?.kind, 'upstream_error');
  assert.ok(r?.kind === 'upstream_error');
  assert.equal(r.token, 'refunded');
  assert.equal(r.refundToken, REFUND);
  assert.equal(r.upstreamStatus, 402);
  assert.equal(r.rateLimited, false);
});

test('an upstream 429, 404, 413 or 503 after redemption is the same refunded upstream_error; a 429 says rate limited', () => {
  for (const status of [429, 404, 413, 503]) {
    const r = classify(status, { error: { message: 'Error forwarding request to upstream', type: 'upstream_error', code: status, refund_token: REFUND } }, { xCashu: REFUND });
    assert.ok(r?.kind === 'upstream_error', String(status));
    assert.equal(r.refundToken, REFUND);
    assert.equal(r.upstreamStatus, status);
    assert.equal(r.rateLimited, status === 429);
  }
});

test('a refund only in the X-Cashu header (body without refund_token) is still found', () => {
  const r = classify(502, { error: { type: 'upstream_error', code: 502 } }, { xCashu: REFUND });
  assert.ok(r?.kind === 'upstream_error');
  assert.equal(r.refundToken, REFUND);
  assert.equal(r.token, 'refunded');
});

test('an upstream failure after redemption with no refund (upstream_request_failed) means the token is spent', () => {
  // upstream/base.py handle_x_cashu: create_error_response("upstream_error", "Payment succeeded but the upstream
  //   request failed", 502, code="upstream_request_failed")
  const r = classify(502, { error: { message: 'Payment succeeded but the upstream request failed', type: 'upstream_error', code: 'upstream_request_failed' }, request_id: RID });
  assert.ok(r?.kind === 'upstream_error');
  assert.equal(r.token, 'spent');
  assert.equal(r.refundToken, undefined);
  assert.equal(r.upstreamStatus, 502);
});

test('a 200 whose body is an upstream_error (no cost could be computed) is not an answer: redeemed, nothing back', () => {
  // handle_x_cashu_non_streaming_response, `if not cost_data`: Response(json {"error": {..."type": "upstream_error",
  //   "code": response.status_code}}, status_code=response.status_code) - i.e. 200
  const r = classify(200, { error: { message: 'Error forwarding request to upstream', type: 'upstream_error', code: 200 } });
  assert.ok(r?.kind === 'upstream_error');
  assert.equal(r.token, 'spent');
});

test('a plain 200 answer is left to the caller', () => {
  assert.equal(classify(200, { id: 'x', choices: [] }), null);
});

test("balance mode's insufficient_quota 402 is its own kind", () => {
  // auth.py: HTTPException(402, detail={"error": {"message": ..., "type": "insufficient_quota", "code": "insufficient_balance"}})
  //   -> http_exception_handler: {"detail": detail, **detail, "request_id": ...}
  const err = { message: 'Insufficient balance: 5000 mSats required. 10 available. (reserved: 0)', type: 'insufficient_quota', code: 'insufficient_balance' };
  const r = classify(402, { detail: { error: err }, error: err, request_id: RID }, { paidWith: 'bearer', sentToken: undefined });
  assert.equal(r?.kind, 'insufficient_quota');
  assert.equal(r?.errorCode, 'insufficient_balance');
  assert.equal(r?.token, 'none');
  // only the detail form (an older handler): still found
  assert.equal(classify(402, { detail: { error: err } }, { paidWith: 'bearer' })?.kind, 'insufficient_quota');
});

test('a foreign-mint swap failure (422) or an unreachable mint (503) echoes our token: rejected_echo, not redeemed', () => {
  // wallet.py classify_redemption_error -> ("mint_error", 422, "Failed to swap token from foreign mint",
  //   "cashu_foreign_mint_swap_failed"); handle_x_cashu: create_error_response(..., token=echo_token)
  const r = classify(422, { error: { message: 'Failed to swap token from foreign mint', type: 'mint_error', code: 'cashu_foreign_mint_swap_failed' }, request_id: RID }, { xCashu: SENT });
  assert.ok(r?.kind === 'rejected_echo');
  assert.equal(r.echoMatches, true);
  assert.equal(r.token, 'unspent');
  assert.equal(r.errorCode, 'cashu_foreign_mint_swap_failed');
  const down = classify(503, { error: { message: 'Cashu mint is unreachable', type: 'mint_unreachable', code: 'cashu_mint_unreachable' } }, { xCashu: SENT });
  assert.equal(down?.kind, 'rejected_echo');
});

test('an already-spent or zero-value token is rejected with no echo', () => {
  // wallet.py: ("token_already_spent", 400, "Cashu token already spent", "cashu_token_already_spent"), in SPENT_TOKEN_CODES
  const r = classify(400, { error: { message: 'Cashu token already spent', type: 'token_already_spent', code: 'cashu_token_already_spent' } });
  assert.equal(r?.kind, 'rejected');
  assert.equal(r?.token, 'spent');
  assert.equal(classify(400, { error: { type: 'cashu_error', code: 'cashu_token_zero_value' } })?.kind, 'rejected');
});

test('a 500 internal_error after redemption is money lost to the provider, with the evidence kept', () => {
  // forward_x_cashu_request except: create_error_response("internal_error", "An unexpected server error occurred", 500)
  const body = { error: { message: 'An unexpected server error occurred', type: 'internal_error', code: 500 }, request_id: RID };
  const r = classify(500, body);
  assert.ok(r?.kind === 'internal_error');
  assert.equal(r.token, 'spent');
  assert.ok(r.evidence.includes('An unexpected server error occurred'));
  // classify_redemption_error TokenConsumedError: ("token_consumed", 500, ..., "cashu_token_consumed")
  const consumed = classify(500, { error: { type: 'token_consumed', code: 'cashu_token_consumed', message: 'Token was redeemed but could not be credited; do not retry' } });
  assert.ok(consumed?.kind === 'internal_error');
  assert.equal(consumed.token, 'spent');
});

test('an unclassified redemption failure or a proxy 502 leaves the token fate unknown', () => {
  // handle_x_cashu: create_error_response("api_error", "Internal error during token redemption", 500, code="internal_error")
  const r = classify(500, { error: { message: 'Internal error during token redemption', type: 'api_error', code: 'internal_error' } });
  assert.ok(r?.kind === 'internal_error');
  assert.equal(r.token, 'unknown');
  const proxy = classifyAnswer({ status: 502, body: undefined, bodyText: '<html>Bad Gateway</html>', paidWith: 'xcashu', sentToken: SENT });
  assert.ok(proxy?.kind === 'internal_error');
  assert.equal(proxy.token, 'unknown');
  assert.equal(proxy.evidence, '<html>Bad Gateway</html>');
});

test("the caller's own mistakes are request_error before any redemption: bad model, bad JSON, bad max_tokens, validation", () => {
  // proxy.py: create_error_response("invalid_model", f"Model '{model_id}' not found", 400)
  assert.equal(classify(400, { error: { message: "Model 'nope' not found", type: 'invalid_model', code: 400 }, request_id: RID })?.kind, 'request_error');
  // parse_request_body_json: HTTPException(400, detail={"error": "max_tokens must be an integer"})
  const mt = classify(400, { detail: { error: 'max_tokens must be an integer' }, request_id: RID });
  assert.equal(mt?.kind, 'request_error');
  assert.equal(mt?.message, 'max_tokens must be an integer');
  assert.equal(mt?.token, 'unspent');
  assert.equal(classify(400, { detail: { error: { type: 'invalid_request_error', code: 'invalid_json' } } })?.kind, 'request_error');
  assert.equal(classify(422, { detail: [{ loc: ['body'], msg: 'field required', type: 'value_error.missing' }] })?.kind, 'request_error');
});

test('an unauthorised or malformed token is rejected before redemption', () => {
  // check_token_balance: HTTPException(401, detail="Invalid authentication token format")
  const r = classify(401, { detail: 'Invalid authentication token format', request_id: RID });
  assert.equal(r?.kind, 'rejected');
  assert.equal(r?.token, 'unspent');
  assert.equal(r?.message, 'Invalid authentication token format');
});

test('a 402 or 413 in no shape routstr writes is never a top-up: a refused payment, or a body too large for the proxy', () => {
  const r = classifyAnswer({ status: 402, body: undefined, bodyText: 'Payment Required', paidWith: 'xcashu', sentToken: SENT });
  assert.equal(r?.kind, 'rejected');
  assert.equal(r?.token, 'unspent');
  assert.equal(classifyAnswer({ status: 413, body: undefined, bodyText: '<html>413 Request Entity Too Large</html>', paidWith: 'xcashu', sentToken: SENT })?.kind, 'request_error');
});

test('a bare 429 (a proxy in front of the node) is rate_limited, honouring Retry-After', () => {
  const r = classify(429, { error: { message: 'Rate limit exceeded', type: 'rate_limit_exceeded', code: 429 } }, { retryAfterHeader: '7' });
  assert.equal(r?.kind, 'rate_limited');
  assert.equal(r?.retryAfterMs, 7000);
});

test("balance mode passes the upstream's error through: an upstream 402, 429 or 500 is upstream_error, nothing spent", () => {
  // forward_upstream_error_response: the upstream JSON body and status, Retry-After kept; rate limits get
  //   error.code = "UPSTREAM_RATE_LIMIT" and error.details (upstream/rate_limit.py)
  const credits = classify(402, { error: { code: 402, message: 'Insufficient credits' } }, { paidWith: 'bearer', sentToken: undefined });
  assert.ok(credits?.kind === 'upstream_error');
  assert.equal(credits.token, 'none');
  assert.equal(credits.upstreamStatus, 402);
  const limited = classify(429, { error: { message: 'Rate limit reached ... Please try again in 1.5s.', code: 'UPSTREAM_RATE_LIMIT', details: { code: 'UPSTREAM_RATE_LIMIT', retry_after_seconds: 1.5 } } }, { paidWith: 'bearer' });
  assert.ok(limited?.kind === 'upstream_error');
  assert.equal(limited.rateLimited, true);
  assert.equal(limited.retryAfterMs, 1500);
  // the node's own answers in balance mode are still told apart
  assert.equal(classify(400, { error: { type: 'invalid_model', code: 400 } }, { paidWith: 'bearer' })?.kind, 'request_error');
  assert.equal(classify(401, { detail: { error: { type: 'invalid_request_error', code: 'invalid_api_key' } } }, { paidWith: 'bearer' })?.kind, 'rejected');
});

test('Retry-After is read as seconds (fractions too) or as an HTTP date', () => {
  assert.equal(parseRetryAfter('2', 0), 2000);
  assert.equal(parseRetryAfter('0.25', 0), 250);
  const now = Date.parse('2026-09-01T00:00:00Z');
  assert.equal(parseRetryAfter('Tue, 01 Sep 2026 00:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter('-3', now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
});

test('error messages are clipped and have tokens redacted', () => {
  const r = classify(400, { error: { type: 'x', code: 'y', message: `bad ${SENT} ${'z'.repeat(500)}` } });
  assert.ok(r?.message && r.message.length <= 303);
  assert.ok(!r?.message?.includes(SENT));
});
