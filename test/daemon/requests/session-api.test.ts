// The node's balance API as the session manager reads it, against the world's balance mode
// (routstr-core v0.4.5 balance.py): every refusal the refund can give is a SessionApiError with
// the code the manager branches on, and the key is the one the node derives from the token.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { apiKeyOf, SessionApi, SessionApiError, versionAtLeast, type SessionApiCode } from '../../../daemon/requests/session-api.ts';
import { chat, provider, startClient, type Client } from '../../world/provider/balance-fixture.ts';

let client: Client;
before(async () => {
  client = await startClient();
});
after(() => client?.stop());

const api = new SessionApi();

async function refusedWith(p: Promise<unknown>, code: SessionApiCode): Promise<SessionApiError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof SessionApiError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

test('a deposit makes the key satroute computed from the token; info, top-up and refund read as the node answers them', async (t) => {
  const p = await provider(t, client);
  const token = await client.pay(20);
  const created = await api.create(p.url, token);
  assert.equal(created.apiKey, apiKeyOf(token), 'the key is known before the token is sent');
  assert.equal(created.balanceMsat, 20_000);
  assert.deepEqual(await api.topup(p.url, created.apiKey, await client.pay(5)), { creditedMsat: 5_000 });
  assert.deepEqual(await api.info(p.url, created.apiKey), { balanceMsat: 25_000, reservedMsat: 0 });
  const r = await api.refund(p.url, created.apiKey);
  assert.equal(r.amountMsat, 25_000);
  assert.deepEqual(await api.refund(p.url, created.apiKey), r, 'a repeat returns the same token');
});

test('refusals carry the code the manager branches on: unknown key, ongoing requests, no answer', async (t) => {
  const p = await provider(t, client, { knobs: { refundDebitDelayMs: 0 } });
  await refusedWith(api.refund(p.url, `sk-${'0'.repeat(64)}`), 'key_not_found');
  const { apiKey } = await api.create(p.url, await client.pay(20));
  // A request holding a reservation: the node refuses to refund under it.
  p.knobs.timeout = true;
  const hung = chat(p, apiKey).catch(() => undefined);
  await waitFor(async () => (await api.info(p.url, apiKey)).reservedMsat > 0);
  const ongoing = await refusedWith(api.refund(p.url, apiKey), 'ongoing_requests');
  assert.equal(ongoing.status, 400);
  await p.stop();
  await hung;
  await refusedWith(api.info(p.url, apiKey), 'unreachable');
});

test('a refund the balance changed under is a 409 to retry', async (t) => {
  // The node's read-to-debit gap (refundDebitDelayMs) on a timer the test holds.
  const gap: { open?: () => void } = {};
  const inGap = async (): Promise<() => void> => {
    while (!gap.open) await new Promise((r) => setImmediate(r));
    const open = gap.open;
    gap.open = undefined;
    return open;
  };
  const delay = (ms: number) => (ms > 0 ? new Promise<void>((r) => (gap.open = r)) : Promise.resolve());
  const p = await provider(t, client, { delay, knobs: { refundDebitDelayMs: 1 } });
  const { apiKey } = await api.create(p.url, await client.pay(20));
  const refund = api.refund(p.url, apiKey);
  const open = await inGap();
  await api.topup(p.url, apiKey, await client.pay(2));
  open();
  await refusedWith(refund, 'concurrent_change');
  const retry = api.refund(p.url, apiKey);
  (await inGap())();
  assert.equal((await retry).amountMsat, 22_000, 'the retry takes the whole balance');
});

test('sessions are used only on nodes from v0.4.3 (debit before minting; no refund under running requests)', () => {
  assert.equal(versionAtLeast('0.4.5', '0.4.3'), true);
  assert.equal(versionAtLeast('v0.4.3-beta', '0.4.3'), true);
  assert.equal(versionAtLeast('0.4.2', '0.4.3'), false);
  assert.equal(versionAtLeast('0.10.0', '0.4.3'), true);
  assert.equal(versionAtLeast('unknown', '0.4.3'), false);
});

async function waitFor(cond: () => Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setImmediate(r));
}
