// The refund endpoint and the version knob, as the tagged routstr-core releases behave
// (balance.py refund_wallet_endpoint, payment/helpers.py check_token_balance, wallet.py sweep).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chat, expectedFor, market, provider, refund } from './fixture.ts';

/** Poll until the provider's mint has seen the token spent (the node redeemed it). */
async function redeemed(isSpent: () => boolean): Promise<void> {
  while (!isSpent()) await new Promise((r) => setTimeout(r, 5));
}

describe('what the version knob changes', () => {
  test('before v0.4.2 an underpaid token gets 413 with the same body as the 402', async (t) => {
    const { payer } = await market(t);
    const p = await provider(t, [payer.mint.url], { version: '0.4.1' });
    const res = await chat(p, await payer.token(1), { max_tokens: 1000 });
    assert.equal(res.status, 413);
    const body = (await res.json()) as { detail: Record<string, unknown> };
    assert.equal(body.detail.type, 'minimum_balance_required');
    assert.equal(body.detail.reason, 'Insufficient balance');
  });

  test('before v0.4.3 the refund route wants an Authorization header: FastAPI answers 422, on both paths', async (t) => {
    const { payer } = await market(t);
    const p = await provider(t, [payer.mint.url], { version: '0.4.2' });
    const token = await payer.token(10);
    assert.equal((await chat(p, token)).status, 200);
    for (const path of ['/v1/balance/refund', '/v1/wallet/refund']) {
      const res = await fetch(`${p.url}${path}`, { method: 'POST', headers: { 'X-Cashu': token } });
      assert.equal(res.status, 422);
      assert.deepEqual(await res.json(), { detail: [{ type: 'missing', loc: ['header', 'authorization'], msg: 'Field required', input: null }] });
    }
  });

  test('before v0.4.4 a refund asked while the request runs is 404, where v0.4.5 says 425', async (t) => {
    const { payer } = await market(t);
    for (const [version, status] of [['0.4.3', 404], ['0.4.5', 425]] as const) {
      const p = await provider(t, [payer.mint.url], { version, knobs: { timeout: true } });
      const token = await payer.token(10);
      const pending = chat(p, token).catch(() => undefined);
      await redeemed(() => payer.isSpent(token));
      const res = await refund(p, token);
      assert.equal(res.status, status, `v${version}`);
      assert.equal(((await res.json()) as { detail: string }).detail, status === 404 ? 'Refund not found' : 'Refund is pending; retry shortly.');
      await p.stop();
      await pending;
    }
  });
});

describe('the refund endpoint over time', () => {
  test('between redemption and the node\'s record a refund is "not found" (a 404 that means "not yet"); afterwards it is served', async (t) => {
    const { payer } = await market(t);
    let now = 2_000_000;
    const p = await provider(t, [payer.mint.url], { clock: () => now, knobs: { refundRecordDelayMs: 1_000 } });
    const token = await payer.token(10);
    const answer = chat(p, token);
    await redeemed(() => payer.isSpent(token));
    const early = await refund(p, token);
    assert.equal(early.status, 404, 'redeemed, not yet recorded');
    assert.equal(((await early.json()) as { detail: string }).detail, 'Refund not found');
    now += 1_000;
    const res = await answer;
    const change = res.headers.get('x-cashu')!;
    assert.deepEqual(await (await refund(p, token)).json(), { token: change, sats: String(10 - Math.ceil(expectedFor('sim-a').costMsat / 1000)) });
  });

  test('change never collected is swept after the sweep age: the refund endpoint answers 410 and the change is spent', async (t) => {
    const { payer } = await market(t);
    let now = 3_000_000;
    const p = await provider(t, [payer.mint.url], { clock: () => now, knobs: { refundSweepAgeMs: 7 * 86_400_000 } });
    const lost = await payer.token(10);
    const lostChange = (await chat(p, lost)).headers.get('x-cashu')!; // the client never banks it
    const banked = await payer.token(10);
    const bankedChange = (await chat(p, banked)).headers.get('x-cashu')!;
    await payer.redeem(bankedChange);
    const earned = p.stats().earnedMsat;
    now += 7 * 86_400_000 - 1;
    assert.equal(await p.sweepRefunds(), 0, 'not yet');
    now += 1;
    const res = await refund(p, lost);
    assert.equal(res.status, 410);
    assert.equal(((await res.json()) as { detail: string }).detail, 'Refund has been swept');
    assert.ok(payer.isSpent(lostChange), 'the node redeemed the change itself');
    assert.equal(p.stats().earnedMsat, earned + 9000);
    const collected = await refund(p, banked);
    assert.equal(collected.status, 200, 'change the client already swapped is "collected", not swept');
    assert.equal(((await collected.json()) as { token: string }).token, bankedChange);
  });
});
