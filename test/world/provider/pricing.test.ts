// Charges that are not exactly tokens x listed price, as routstr-core v0.4.5 makes them
// (payment/cost_calculation.py, payment/models.py): the request price listed but never billed,
// USD-reported costs converted at the node's current BTC/USD rate, prices that move.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getTokenMetadata } from '@cashu/cashu-ts';
import { requiredMsat } from '../provider.ts';
import { chat, chatBody, CHAT, expectedFor, market, provider } from './fixture.ts';

interface Priced {
  usage: { completion_tokens: number; prompt_tokens: number; cost: { base_msats: number; total_msats: number; input_msats: number; output_msats: number; total_usd?: number }; cost_details?: unknown };
}

test('the request price is listed (at least 0.001 sat) but never billed', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { models: [{ ...CHAT, requestSats: 2 }, { ...CHAT, id: 'sim/free-request' }] });
  const listed = (await (await fetch(`${p.url}/v1/models`)).json()) as { data: { id: string; sats_pricing: { request: number }; pricing: { request: number } }[] };
  assert.equal(listed.data.find((m) => m.id === CHAT.id)!.sats_pricing.request, 2);
  const floor = listed.data.find((m) => m.id === 'sim/free-request')!;
  assert.equal(floor.sats_pricing.request, 0.001, "routstr's min_request_msat floor");
  assert.equal(floor.pricing.request, 0, 'the USD price it derives from is 0');
  const res = await chat(p, await payer.token(10));
  const body = (await res.json()) as Priced;
  assert.equal(body.usage.cost.base_msats, 0);
  assert.equal(body.usage.cost.total_msats, expectedFor('sim-a').costMsat, 'tokens x price, no request fee');
  assert.equal(await payer.redeem(res.headers.get('x-cashu')!), 10 - Math.ceil(expectedFor('sim-a').costMsat / 1000));
});

test("an upstream that reports USD is charged at the node's current BTC/USD rate: +3 % drift costs ~3 % more than the list", async (t) => {
  const { payer } = await market(t, 4000);
  const p = await provider(t, [payer.mint.url], { knobs: { usdCost: true, usdDrift: 0.03, completionTokens: 500 } });
  const list = (tokens: { prompt: number; completion: number }) => tokens.prompt * 10 + tokens.completion * 20;
  const ratioOf = async (drift: number) => {
    p.knobs.usdDrift = drift;
    const res = await chat(p, await payer.token(20), { max_tokens: 600 });
    assert.equal(res.status, 200);
    const body = (await res.json()) as Priced;
    const charged = body.usage.cost.total_msats;
    assert.equal(res.headers.get('x-routstr-cost-msats'), String(charged));
    assert.ok(Number(res.headers.get('x-routstr-cost-usd')) > 0, 'the USD the node billed');
    assert.ok(body.usage.cost_details, "the upstream's own cost_details pass through");
    assert.equal(body.usage.cost.input_msats + body.usage.cost.output_msats, charged);
    assert.equal(await payer.redeem(res.headers.get('x-cashu')!), 20 - Math.ceil(charged / 1000), 'change follows the USD charge');
    return charged / list({ prompt: body.usage.prompt_tokens, completion: body.usage.completion_tokens });
  };
  const up = await ratioOf(0.03);
  assert.ok(up > 1.028 && up < 1.032, `charged ${up} x the list price`);
  const down = await ratioOf(-0.03);
  assert.ok(down > 0.968 && down < 0.972, `charged ${down} x the list price`);
  const none = await ratioOf(0);
  assert.ok(none >= 1 && none < 1.001, 'no drift: the list price, up to the rounding up of a float');
});

test('a price change between routing and settlement: the request is checked and charged at the new price', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url]);
  const before = (await (await fetch(`${p.url}/v1/models`)).json()) as { data: { id: string; sats_pricing: { prompt: number; completion: number } }[] };
  const snapshot = before.data.find((m) => m.id === CHAT.id)!.sats_pricing;
  const sizedForSnapshot = Math.ceil(requiredMsat(CHAT, chatBody()) / 1000);
  p.knobs.priceChange = { factor: 1.5 };
  const first = await chat(p, await payer.token(sizedForSnapshot));
  assert.equal(first.status, 402, 'a token sized at the routed price is now too small');
  const required = ((await first.json()) as { detail: { amount_required_msat: number } }).detail.amount_required_msat;
  assert.ok(required > sizedForSnapshot * 1000);
  const res = await chat(p, await payer.token(Math.ceil(required / 1000)));
  const body = (await res.json()) as Priced;
  const { promptTokens, completionTokens } = expectedFor('sim-a');
  const atSnapshot = Math.ceil(promptTokens * snapshot.prompt * 1000 + completionTokens * snapshot.completion * 1000);
  assert.equal(body.usage.cost.total_msats, Math.ceil(atSnapshot * 1.5), 'charged at 1.5 x what the client routed by');
  const after = (await (await fetch(`${p.url}/v1/models`)).json()) as typeof before;
  assert.ok(Math.abs(after.data.find((m) => m.id === CHAT.id)!.sats_pricing.prompt - snapshot.prompt * 1.5) < 1e-12, 'the listing moved too');
  assert.equal(p.knobs.priceChange, null, 'applied once');
  assert.ok(getTokenMetadata(res.headers.get('x-cashu')!).amount.toNumber() > 0);
});
