// Upstream failures arrive after the token was redeemed (routstr-core v0.4.5
// forward_x_cashu_request): status passed through, the whole amount refunded in the body and in
// X-Cashu, no Retry-After. The node's own 402 (minimum_balance_required) stays before redemption.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chat, market, post, provider, refund, CHAT, type ErrorBody } from './fixture.ts';

/** The answer the node gives for a failed upstream, checked to the byte, and the refund it carries. */
async function upstreamFailure(res: Response, status: number, message = 'Error forwarding request to upstream'): Promise<string> {
  assert.equal(res.status, status);
  assert.equal(res.headers.get('retry-after'), null);
  const text = await res.text();
  const body = JSON.parse(text) as ErrorBody;
  assert.deepEqual(Object.keys(body), ['error'], 'no request_id: the node builds this body by hand');
  assert.equal(body.error.message, message);
  assert.equal(body.error.type, 'upstream_error');
  assert.equal(body.error.code, status);
  assert.equal(res.headers.get('x-cashu'), body.error.refund_token);
  assert.ok(text.startsWith('{"error": {"message": '), "json.dumps' separators");
  return body.error.refund_token!;
}

test('an upstream out of credit (402) for a while: the token is taken and refunded in full, then the provider serves again', async (t) => {
  const { payer } = await market(t);
  let now = 1_000_000;
  const p = await provider(t, [payer.mint.url], { clock: () => now, knobs: { upstreamError: { status: 402, forMs: 60_000 } } });
  const token = await payer.token(12);
  const refundToken = await upstreamFailure(await chat(p, token), 402);
  assert.ok(payer.isSpent(token), 'redeemed before the upstream said no');
  assert.equal(await payer.redeem(refundToken), 12);
  assert.deepEqual(await (await refund(p, token)).json(), { token: refundToken, sats: '12' }, 'the refund endpoint knows it too');
  now += 59_000;
  await upstreamFailure(await chat(p, await payer.token(12)), 402);
  now += 1_000;
  assert.equal((await chat(p, await payer.token(12))).status, 200);
  assert.equal(p.knobs.upstreamError, null, 'the period is over');
});

test('an upstream out of credit for ever (413) looks like an underpayment by its status only: the body says refund', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { knobs: { upstreamError: { status: 413 } } });
  for (let i = 0; i < 3; i++) await payer.redeem(await upstreamFailure(await chat(p, await payer.token(10)), 413));
  assert.equal(p.stats().redeemed, 3);
});

test('an upstream that no longer serves one model answers 404 for it only, after redemption', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { models: [CHAT, { ...CHAT, id: 'sim/other', aliasIds: [] }], knobs: { upstreamError: { status: 404, models: ['sim/other'] } } });
  await payer.redeem(await upstreamFailure(await chat(p, await payer.token(10), { model: 'sim/other' }), 404));
  assert.equal((await chat(p, await payer.token(10))).status, 200);
});

test('upstream 5xx and 429 pass through with their status; a Responses request says so in its message', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { knobs: { upstreamError: { status: 503 } } });
  await payer.redeem(await upstreamFailure(await chat(p, await payer.token(10)), 503));
  p.knobs.upstreamError = { status: 429 };
  const res = await post(p, '/v1/responses', await payer.token(93), { model: CHAT.id, input: 'hello' });
  await payer.redeem(await upstreamFailure(res, 429, 'Error forwarding Responses API request to upstream'));
});

test("the node's own 402 comes before redemption: the token stays unspent and no refund exists", async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { knobs: { upstreamError: { status: 402 } } });
  const token = await payer.token(1);
  const res = await chat(p, token);
  assert.equal(res.status, 402);
  const body = (await res.json()) as { detail: { type: string; amount_required_msat: number } };
  assert.equal(body.detail.type, 'minimum_balance_required');
  assert.equal(res.headers.get('x-cashu'), null);
  assert.equal((await refund(p, token)).status, 404);
  assert.equal(await payer.redeem(token), 1);
});
