import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { chargeMsat, createProviderState, startProvider } from '../provider.ts';
import { parseScenario } from '../scenario.ts';
import { keyHashOf } from './balance-auth.ts';
import { bearer, CHAT, chat, createKey, detail, eventually, Gate, info, provider, refund, startClient, TINY, tokensFor, type Client } from './balance-fixture.ts';

let client: Client;
before(async () => {
  client = await startClient();
});
after(() => client?.stop());

const T = tokensFor('sim-b');
const COST = chargeMsat(CHAT, T.prompt, T.completion, 0.001).totalMsat;

describe('the balance API', () => {
  test('create by POST or GET redeems the token into an sk- key holding its value in msat', async (t) => {
    const p = await provider(t, client);
    const token = await client.pay(7);
    const created = await createKey(p, token);
    assert.deepEqual(created, { api_key: `sk-${keyHashOf(token)}`, balance: 7000 });
    const other = await client.pay(3);
    const res = await fetch(`${p.url}/v1/balance/create?initial_balance_token=${encodeURIComponent(other)}`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { api_key: `sk-${keyHashOf(other)}`, balance: 3000 });
    const none = await fetch(`${p.url}/v1/balance/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(none.status, 422);
  });

  test('info answers for a key, also under the older /v1/wallet prefix; an unknown key is 401', async (t) => {
    const p = await provider(t, client);
    const key = await createKey(p, await client.pay(4));
    const res = await fetch(`${p.url}/v1/wallet/info`, { headers: bearer(key.api_key) });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { balance: number }).balance, 4000);
    const unknown = await fetch(`${p.url}/v1/balance/info`, { headers: bearer(`sk-${'a'.repeat(64)}`) });
    assert.equal(unknown.status, 401);
    assert.equal(((await detail(unknown)) as { error: { code: string } }).error.code, 'invalid_api_key');
    const notBearer = await fetch(`${p.url}/v1/balance/info`, { headers: { authorization: key.api_key } });
    assert.equal(notBearer.status, 401);
  });

  test('topup adds a token to the balance (JSON body or query), and refuses what is not a token', async (t) => {
    const p = await provider(t, client);
    const key = await createKey(p, await client.pay(2));
    const topup = (q: string, body?: unknown) =>
      fetch(`${p.url}/v1/balance/topup${q}`, { method: 'POST', headers: bearer(key.api_key), body: body === undefined ? undefined : JSON.stringify(body) });
    const a = await topup('', { cashu_token: await client.pay(5) });
    assert.deepEqual([a.status, await a.json()], [200, { msats: 5000 }]);
    const b = await topup(`?cashu_token=${encodeURIComponent(await client.pay(1))}`);
    assert.deepEqual([b.status, await b.json()], [200, { msats: 1000 }]);
    assert.equal((await info(p, key.api_key)).balance, 8000);
    const bad = await topup('', { cashu_token: 'not-a-token' });
    assert.deepEqual([bad.status, await detail(bad)], [400, 'Invalid token format']);
    const missing = await topup('');
    assert.deepEqual([missing.status, await detail(missing)], [400, 'A cashu_token is required.']);
  });

  test('a token from a mint the node does not list is refused with 422 and stays spendable', async (t) => {
    const p = await provider(t, client, { knobs: { acceptedMints: ['http://127.0.0.1:9/other'] }, mints: ['http://127.0.0.1:9/other'] });
    const token = await client.pay(3);
    const res = await chat(p, token);
    assert.equal(res.status, 422);
    assert.equal(((await detail(res)) as { error: { code: string } }).error.code, 'cashu_foreign_mint_swap_failed');
    assert.equal(await client.redeem(token), 3);
  });

  test('msat tokens make an msat key at a listed mint, but the primary mint takes only sat', async (t) => {
    const primary = 'http://127.0.0.1:9/primary';
    const p = await provider(t, client, { mints: [primary, client.mint.url] });
    const key = await createKey(p, await client.payMsat(4321));
    assert.equal(key.balance, 4321);
    assert.equal((await chat(p, key.api_key, { model: TINY.id })).status, 200);
    const left = (await info(p, key.api_key)).balance;
    const r = await refund(p, key.api_key);
    assert.equal(r.status, 200);
    const body = (await r.json()) as { token: string; msats: string };
    assert.equal(body.msats, String(left));
    assert.equal(await client.redeem(body.token, 'msat'), left);

    const q = await startProvider({ name: 'sim-c', relays: [], mints: [client.mint.url], models: [TINY], noAnnounce: true });
    t.after(() => q.stop());
    const res = await fetch(`${q.url}/v1/balance/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ initial_balance_token: await client.payMsat(2000) }) });
    assert.equal(res.status, 400);
    assert.equal(((await detail(res)) as { error: { code: string } }).error.code, 'cashu_token_redemption_failed');
  });
});

describe('refunding a balance', () => {
  test('refused while a request runs; afterwards the whole balance comes back once, and a repeat gives the same token', async (t) => {
    const gate = new Gate();
    const p = await provider(t, client, { delay: gate.delay, knobs: { ttfbMs: 1 } });
    const key = await createKey(p, await client.pay(30));
    const running = chat(p, key.api_key);
    await gate.until(1);
    const during = await refund(p, key.api_key);
    assert.equal(during.status, 400);
    assert.equal(await detail(during), 'Cannot refund key. There are ongoing requests for this api key.');
    gate.open();
    assert.equal((await running).status, 200);

    const left = 30_000 - COST;
    const first = await refund(p, key.api_key);
    assert.equal(first.status, 200);
    const body = (await first.json()) as { token: string; sats: string };
    assert.equal(body.sats, String(Math.floor(left / 1000)));
    assert.equal(first.headers.get('x-cashu'), null, 'the API-key branch answers a plain dict');
    const again = await refund(p, key.api_key);
    assert.deepEqual(await again.json(), body, 'a repeat returns the same token');
    assert.equal(await client.redeem(body.token), Math.floor(left / 1000));
    const i = await info(p, key.api_key);
    assert.deepEqual([i.balance, i.reserved], [0, 0]);
    const afterSpent = await refund(p, key.api_key);
    assert.deepEqual(await afterSpent.json(), body, 'still the same token once spent');
  });

  test('a balance that changes between the read and the debit gives 409, and a retry refunds it all', async (t) => {
    const gate = new Gate();
    const p = await provider(t, client, { delay: gate.delay, knobs: { refundDebitDelayMs: 5 } });
    const key = await createKey(p, await client.pay(4));
    const racing = refund(p, key.api_key);
    await gate.until(1);
    const topup = await fetch(`${p.url}/v1/balance/topup`, { method: 'POST', headers: bearer(key.api_key), body: JSON.stringify({ cashu_token: await client.pay(2) }) });
    assert.equal(topup.status, 200);
    gate.open();
    const lost = await racing;
    assert.equal(lost.status, 409);
    assert.equal(await detail(lost), 'Balance changed concurrently. Please retry the refund.');
    const retry = await refund(p, key.api_key);
    assert.equal(((await retry.json()) as { sats: string }).sats, '6');
  });

  test('an unknown key gets 401 key_not_found', async (t) => {
    const p = await provider(t, client);
    const unknown = await refund(p, `sk-${'b'.repeat(64)}`);
    assert.equal(unknown.status, 401);
    assert.deepEqual(await detail(unknown), {
      error: { message: 'Key not found. Deposit first via /v1/wallet/create before requesting a refund.', type: 'invalid_request_error', code: 'key_not_found' },
    });
  });

  test('a balance an overrun took to zero has nothing to refund (400)', async (t) => {
    // A charge above the reservation is capped at the balance (auth.py's overrun branch).
    const p = await provider(t, client, { knobs: { overchargeFactor: 1000 } });
    const key = await createKey(p, await client.pay(1));
    const res = await chat(p, key.api_key, { model: TINY.id });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { usage: { cost: { total_msats: number } } }).usage.cost.total_msats, 1000);
    const none = await refund(p, key.api_key);
    assert.deepEqual([none.status, await detail(none)], [400, 'No balance to refund']);
  });

  test('a refund left uncollected past the sweep age is swept back by the node: 410', async (t) => {
    let now = 1_700_000_000_000;
    const p = await provider(t, client, { clock: () => now, knobs: { balanceRefundSweepMs: 60_000 } });
    const key = await createKey(p, await client.pay(5));
    const body = (await (await refund(p, key.api_key)).json()) as { token: string };
    now += 2 * 3_600_000; // past the refund cache (1 h) and the sweep age
    const swept = await refund(p, key.api_key);
    assert.deepEqual([swept.status, await detail(swept)], [410, 'Refund has been swept']);
    await assert.rejects(client.redeem(body.token), 'the node took the refund back');
  });

  test('a reservation older than the stale timeout no longer blocks the refund', async (t) => {
    let now = 1_700_000_000_000;
    const p = await provider(t, client, { clock: () => now, knobs: { timeout: true } });
    const key = await createKey(p, await client.pay(5));
    const abort = new AbortController();
    const hung = chat(p, key.api_key, {}, { signal: abort.signal }).catch(() => undefined);
    t.after(() => abort.abort());
    await eventually(async () => (await info(p, key.api_key)).reserved > 0, 'the request holds its reservation');
    assert.equal((await refund(p, key.api_key)).status, 400);
    now += 301_000;
    const r = await refund(p, key.api_key);
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { sats: string }).sats, '5');
    abort.abort();
    await hung;
  });
});

describe('balances across restarts and disappearance', () => {
  test('a balance survives a dead port and a restart on the same state; reservations do not', async (t) => {
    const state = createProviderState();
    const first = await startProvider({ name: 'sim-b', relays: [], mints: [client.mint.url], models: [CHAT], noAnnounce: true, state });
    const key = await createKey(first, await client.pay(9));
    await first.setDead(true);
    await assert.rejects(fetch(`${first.url}/v1/balance/info`, { headers: bearer(key.api_key) }));
    await first.setDead(false);
    assert.equal((await info(first, key.api_key)).balance, 9000);
    const port = Number(new URL(first.url).port);
    await first.stop();

    const second = await startProvider({ name: 'sim-b', relays: [], mints: [client.mint.url], models: [CHAT], noAnnounce: true, state, port });
    t.after(() => second.stop());
    assert.equal(second.url, first.url);
    assert.equal((await chat(second, key.api_key)).status, 200);
    const r = await refund(second, key.api_key);
    const body = (await r.json()) as { token: string; sats: string };
    assert.equal(body.sats, String(Math.floor((9000 - COST) / 1000)));
    assert.equal(await client.redeem(body.token), Math.floor((9000 - COST) / 1000));

    const third = await startProvider({ name: 'sim-b', relays: [], mints: [client.mint.url], models: [CHAT], noAnnounce: true, state });
    t.after(() => third.stop());
    const repeat = await refund(third, key.api_key);
    assert.deepEqual(await repeat.json(), body, 'the refund is remembered across a restart, not only in the cache');
  });

  test('vanished: the port closes for good and the balance never comes back', async (t) => {
    const state = createProviderState();
    const p = await provider(t, client, { state });
    const key = await createKey(p, await client.pay(6));
    p.knobs.vanished = true;
    await p.setDead(true);
    await p.setDead(false);
    p.knobs.vanished = false;
    await assert.rejects(fetch(`${p.url}/v1/balance/info`, { headers: bearer(key.api_key) }));
    const again = await provider(t, client, { state });
    const r = await refund(again, key.api_key);
    assert.equal(r.status, 401);
  });
});

describe('older node versions', () => {
  test('0.4.4: no POST create, and an unknown key is a plain 401 string', async (t) => {
    const p = await provider(t, client, { version: '0.4.4' });
    const res = await fetch(`${p.url}/v1/balance/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ initial_balance_token: 'x' }) });
    assert.equal(res.status, 404);
    const unknown = await refund(p, `sk-${'c'.repeat(64)}`);
    assert.deepEqual([unknown.status, await detail(unknown)], [401, 'Key not found. Deposit first via /v1/wallet/create before requesting a refund.']);
  });

  test('0.4.2: a refund while a request runs is allowed and takes the reservation too', async (t) => {
    const gate = new Gate();
    const p = await provider(t, client, { version: '0.4.2', delay: gate.delay, knobs: { ttfbMs: 1 } });
    const token = await client.pay(8);
    const key = (await (await fetch(`${p.url}/v1/balance/create?initial_balance_token=${encodeURIComponent(token)}`)).json()) as { api_key: string };
    const running = chat(p, key.api_key);
    await gate.until(1);
    const r = await refund(p, key.api_key);
    assert.equal(r.status, 200);
    const reserved = 8000 - Number(((await r.json()) as { sats: string }).sats) * 1000;
    assert.ok(reserved > 0, 'what was reserved is not refunded');
    gate.open();
    assert.equal((await running).status, 200);
  });
});

test('the balance-mode knobs are accepted in a scenario file', () => {
  const s = parseScenario({
    mints: [{ name: 'm' }],
    nwcBalanceSat: 0,
    providers: [{ name: 'p', models: [{ id: 'x', promptSatsPerToken: 1, completionSatsPerToken: 1 }], knobs: { chunkDelayMs: 40, vanished: false, balanceRefundSweepMs: 1000, staleReservationMs: 5000, refundDebitDelayMs: 2 } }],
  });
  assert.equal(s.providers[0].knobs?.chunkDelayMs, 40);
});
