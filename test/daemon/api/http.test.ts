// The OpenAI-compatible HTTP API end to end: a real daemon (startDaemon) on 127.0.0.1:0 against
// the local world, driven by the official `openai` v5 client, unmodified. One world and one
// daemon for the file; each test ends with every sat accounted for (`audit verify`).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { loadConfig } from '../../../daemon/config.ts';
import { startDaemon, type Daemon } from '../../../daemon/daemon.ts';
import { InlineSwapEngine } from '../../../wallet/swap/engine.ts';
import { startWorld, type Scenario, type World } from '../../world/index.ts';
import { assertAccounted } from '../requests/books.ts';

const MODEL = 'chat-small';
const SCENARIO: Scenario = {
  seed: 7,
  mints: [{ name: 'mint-a' }, { name: 'mint-b', inputFeePpk: 100 }],
  nwcBalanceSat: 0,
  providers: [
    {
      name: 'cheap', mints: ['mint-a'], announce: false,
      models: [
        { id: MODEL, promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, contextLength: 2000, maxCompletionTokens: 400 },
        { id: 'embed-small', kind: 'embedding', promptSatsPerToken: 0.001, completionSatsPerToken: 0, maxCostSats: 5 },
      ],
    },
    // drops every stream after its first event
    { name: 'dropper', mints: ['mint-a'], announce: false, knobs: { midStreamDrop: 1 }, models: [{ id: 'chat-drop', promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, contextLength: 2000, maxCompletionTokens: 400 }] },
    // Lists its mint with a trailing slash and refuses any other spelling (a real node compares them as exact strings).
    { name: 'dear', mints: ['mint-b'], mintSpelling: 'trailing-slash', announce: false, knobs: { foreignMint: 'refuse' }, models: [{ id: MODEL, promptSatsPerToken: 0.03, completionSatsPerToken: 0.12, contextLength: 2000, maxCompletionTokens: 400 }] },
  ],
};

let world: World;
let daemon: Daemon;
let dir: string;
let key: string;
let base: string;

async function fund(mint: string, amountSat: number): Promise<void> {
  const q = await daemon.wallet.createFundingQuote(amountSat, { mint });
  world.lightning.pay(q.bolt11);
  const done = await daemon.wallet.waitForFunding(q.quoteId, { pollMs: 5, timeoutMs: 5000 });
  assert.equal(done.state, 'issued');
}

const books = () => assertAccounted({ db: daemon.db, wallet: daemon.wallet, payments: daemon.payments, lifecycle: daemon.lifecycle });
/** What has been paid so far: tokens taken, sats sent for requests, paid requests the providers saw. */
const paid = () => ({
  tokens: daemon.payments.stats().tokens,
  sentSat: (daemon.db.prepare('SELECT COALESCE(SUM(sent_sat), 0) FROM requests').pluck().get() as number),
  providerRequests: world.providers.reduce((n, p) => n + p.stats().requests, 0),
});

before(async () => {
  world = await startWorld(SCENARIO);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-http-'));
  const config = loadConfig({
    SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: world.mints.map((m) => m.url).join(','), SATROUTE_RELAYS: '',
    SATROUTE_PROVIDERS: world.providers.map((p) => p.url).join(','), SATROUTE_LISTEN: '127.0.0.1:0',
  });
  daemon = await startDaemon(config, { wallet: { engine: new InlineSwapEngine(), synchronous: 'NORMAL' } });
  await Promise.all(daemon.market.providers().map((p) => daemon.market.probe(p.id)));
  assert.equal(daemon.market.providersFor(MODEL).length, 2, 'both providers probed');
  assert.equal(daemon.market.providersFor('chat-drop').length, 1);
  await fund(world.mints[0].url, 3000);
  await fund(world.mints[1].url, 2000);
  key = daemon.keys.create({ name: 'app', admin: true }).key;
  base = `http://${daemon.info.listen}`;
});

after(async () => {
  await daemon?.stop();
  await world?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the official openai client gets an answer, paid to the cheapest provider, with the cost in the headers and every sat accounted for', async () => {
  const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
  const { data, response } = await client.chat.completions
    .create({ model: MODEL, messages: [{ role: 'user', content: 'Say hello to the test world.' }], max_tokens: 40 })
    .withResponse();
  assert.ok(data.choices[0].message.content);
  const requestId = response.headers.get('x-satroute-request-id')!;
  assert.match(requestId, /^req_/);
  const row = daemon.ledger.get(requestId)!;
  assert.equal(response.headers.get('x-satroute-provider'), row.provider);
  assert.equal(row.status, 'succeeded');
  assert.equal(row.providerUrl, world.provider('cheap').url);
  assert.equal(Number(response.headers.get('x-satroute-cost-msat')), (row.sentSat - row.changeSat) * 1000);
  assert.ok(Number(response.headers.get('x-satroute-overhead-ms')) >= 0);
  // Reconciled: charged = sent - change - fee, expected = usage x the routed price, no flag for an honest provider.
  assert.equal(row.chargedMsat, (row.sentSat - row.changeSat - row.feeSat) * 1000);
  assert.equal(row.promptTokens, data.usage!.prompt_tokens);
  assert.ok(row.expectedMsat !== null && row.expectedMsat > 0);
  assert.deepEqual(row.flags, []);
  assert.equal(world.provider('cheap').stats().succeeded, 1);
  await books();
});

const client = () => new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

test('the official client streams: chunks as they come, the last one before [DONE] carries usage and the satroute cost', async () => {
  const stream = await client().chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Stream me a greeting.' }], max_tokens: 40, stream: true });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.ok(text.length > 0);
  const last = chunks.at(-1) as unknown as { usage: { prompt_tokens: number }; satroute: { request_id: string; cost_msat: number; charged_msat: number; expected_msat: number; flags: string[] } };
  assert.ok(last.usage.prompt_tokens > 0);
  const row = daemon.ledger.get(last.satroute.request_id)!;
  assert.equal(row.status, 'succeeded');
  assert.equal(row.stream, true);
  assert.equal(last.satroute.charged_msat, row.chargedMsat);
  assert.equal(last.satroute.cost_msat, (row.sentSat - row.changeSat) * 1000);
  assert.equal(last.satroute.expected_msat, row.expectedMsat);
  assert.deepEqual(last.satroute.flags, []);
  assert.equal(chunks.filter((c) => (c as { usage?: unknown }).usage).length, 1, 'usage once, in the last chunk');
  await books();
});

test('a stream that breaks after its first event ends with an error the official client raises, and its charge is settled', async () => {
  const stream = await client().chat.completions.create({ model: 'chat-drop', messages: [{ role: 'user', content: 'Stream me something long.' }], max_tokens: 40, stream: true });
  const got: unknown[] = [];
  await assert.rejects(async () => {
    for await (const c of stream) got.push(c);
  }, (err: unknown) => err instanceof OpenAI.APIError && /stream broke/.test(err.message));
  assert.equal(got.length, 1);
  await books();
});

test('embeddings and the Responses API go through the same path', async () => {
  const e = await client().embeddings.create({ model: 'embed-small', input: 'hello world' });
  assert.ok(e.data[0].embedding.length > 0);
  const r = await client().responses.create({ model: MODEL, input: 'Say hi.', max_output_tokens: 30 });
  assert.ok(r.output.length > 0);
  await books();
});

test('a streamed /v1/responses gets its change back (asked of the node unstreamed, replayed as Responses events the official client reads)', async () => {
  // routstr-core v0.4.5 returns no change for a streamed /v1/responses (the world mirrors it).
  const stream = await client().responses.create({ model: MODEL, input: 'Stream me a greeting.', max_output_tokens: 30, stream: true });
  const events: { type: string; delta?: string; response?: { output_text?: string; output: { content?: { text?: string }[] }[] }; satroute?: { request_id: string; charged_msat: number; flags: string[] } }[] = [];
  for await (const e of stream) events.push(e as unknown as (typeof events)[number]);
  const completed = events.find((e) => e.type === 'response.completed' || e.type === 'response.incomplete')!;
  const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
  assert.ok(text.length > 0);
  assert.equal(text, completed.response!.output[0].content![0].text);
  const satroute = events.find((e) => e.type === 'satroute')!.satroute!;
  const row = daemon.ledger.get(satroute.request_id)!;
  assert.equal(row.status, 'succeeded');
  assert.equal(row.stream, true);
  assert.deepEqual(row.flags, [], 'no usage_missing: the node found the usage');
  assert.ok(row.changeSat > 0, 'the change came back');
  assert.ok(row.promptTokens! > 0);
  assert.equal(row.chargedMsat, (row.sentSat - row.changeSat - row.feeSat) * 1000);
  assert.equal(satroute.charged_msat, row.chargedMsat);
  const types = events.map((e) => e.type);
  assert.equal(types[0], 'response.created');
  assert.ok(types.includes('response.output_item.added') && types.includes('response.content_part.added'), types.join(','));
  // The higher-level helper accumulates the same events into the final response.
  const final = await client().responses.stream({ model: MODEL, input: 'Stream me another.', max_output_tokens: 30 }).finalResponse();
  const message = final.output[0] as { type: string; content: { type: string; text: string }[] };
  assert.equal(message.type, 'message');
  assert.ok(message.content[0].text.length > 0);
  await books();
});

test('GET /v1/models lists the catalogue with the cheapest price per model', async () => {
  const list = [];
  for await (const m of client().models.list()) list.push(m);
  const chat = list.find((m) => m.id === MODEL) as unknown as { satroute: { providers: number; cheapest: { prompt_sats_per_mtok: number } } };
  assert.equal(chat.satroute.providers, 2);
  assert.equal(chat.satroute.cheapest.prompt_sats_per_mtok, 10_000);
  await books();
});

test('requests without a valid key are refused with 401 in OpenAI\'s error shape; /healthz needs none', async () => {
  const before = paid();
  await assert.rejects(new OpenAI({ apiKey: 'sr_wrong', baseURL: `${base}/v1`, maxRetries: 0 }).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }), OpenAI.AuthenticationError);
  for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: `Bearer ${key.slice(0, -1)}${key.endsWith('x') ? 'y' : 'x'}` }] as Record<string, string>[]) {
    const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unauthorized');
  }
  const revoked = daemon.keys.create({ name: 'old' }).key;
  daemon.keys.revoke('old');
  assert.equal((await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${revoked}` } })).status, 401);
  assert.equal((await fetch(`${base}/metrics`)).status, 401, 'metrics need a key too');
  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { ok: boolean }).ok, true);
  assert.equal(daemon.ledger.attempts('none').length, 0);
  assert.deepEqual(paid(), before, 'nothing paid for a refused request');
  await books();
});

test('bad bodies and headers are the caller\'s 400/413, and nothing is paid for them', async () => {
  const before = paid();
  assert.equal((await post('/v1/chat/completions', { model: MODEL })).status, 400);
  const bad = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: '{not json' });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
  assert.equal((await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(11 * 1024 * 1024) }] })).status, 413);
  assert.equal((await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] }, { 'x-satroute-max-sats': 'lots' })).status, 400);
  assert.equal((await fetch(`${base}/v1/nothing`, { headers: { authorization: `Bearer ${key}` } })).status, 404);
  assert.deepEqual(paid(), before, 'no token taken, no sat sent, no provider asked');
  await books();
});

test('x-satroute-max-sats below any token is refused as over budget; x-satroute-explain lists the candidates', async () => {
  const capped = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 300 }, { 'x-satroute-max-sats': '1' });
  const cappedBody = (await capped.json()) as { error: { code: string; message: string } };
  assert.equal(capped.status, 402, cappedBody.error.message);
  assert.equal(cappedBody.error.code, 'budget_exceeded');
  const res = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 20 }, { 'x-satroute-explain': '1', 'x-satroute-provider': world.provider('dear').url });
  assert.equal(res.status, 200);
  const explain = JSON.parse(res.headers.get('x-satroute-explain')!) as { skipped: unknown[]; tried: unknown[] };
  assert.deepEqual(explain.tried, []);
  assert.equal(daemon.ledger.get(res.headers.get('x-satroute-request-id')!)!.providerUrl, world.provider('dear').url, 'the pin is honoured');
  await res.json();
  await books();
});

test('50 concurrent requests against a daily budget that fits 10 never overspend it', async () => {
  const probe = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 20 }, { 'x-satroute-provider': world.provider('cheap').url });
  const reservedSats = Number(probe.headers.get('x-satroute-reserved-sats'));
  const probeBody = await probe.text();
  assert.equal(probe.status, 200, probeBody);
  assert.ok(reservedSats > 0);
  const dailySats = 10 * reservedSats;
  const tight = daemon.keys.create({ name: 'tight', dailySats });
  const answers = await Promise.all(Array.from({ length: 50 }, () =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${tight.key}`, 'content-type': 'application/json', 'x-satroute-provider': world.provider('cheap').url },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 20 }),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error?: { code: string } } })),
  ));
  const ok = answers.filter((a) => a.status === 200).length;
  assert.ok(ok >= 10, `${ok} served`);
  for (const a of answers.filter((x) => x.status !== 200)) {
    assert.equal(a.status, 402);
    assert.equal(a.body.error!.code, 'budget_exceeded');
  }
  await books();
  assert.ok(daemon.budgets.spentTodayMsat('tight') <= dailySats * 1000, `spent ${daemon.budgets.spentTodayMsat('tight')} msat of ${dailySats * 1000}`);
  const audit = (await (await fetch(`${base}/admin/audit?client=tight`, { headers: { authorization: `Bearer ${key}` } })).json()) as { totals: { all: { requests: number; succeeded: number; sent_sats: number; change_sats: number } }; requests: { status: string; sent_sats: number; error_code: string | null }[] };
  assert.equal(audit.totals.all.requests, 50, 'refused requests are in the audit too');
  assert.equal(audit.totals.all.succeeded, ok);
  for (const r of audit.requests.filter((x) => x.status !== 'succeeded')) {
    assert.equal(r.sent_sats, 0, 'a refused request paid nothing');
    assert.equal(r.error_code, 'budget_exceeded');
  }
  assert.ok((audit.totals.all.sent_sats - audit.totals.all.change_sats) * 1000 <= dailySats * 1000);
});

test('admin routes need the admin scope; /metrics is Prometheus text with the requests counted', async () => {
  const plain = daemon.keys.create({ name: 'plain' }).key;
  assert.equal((await fetch(`${base}/admin/status`, { headers: { authorization: `Bearer ${plain}` } })).status, 403);
  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(res.status, 200, path);
    return res;
  };
  assert.equal(((await (await get('/admin/status')).json()) as { requests_in_flight: number }).requests_in_flight, 0);
  assert.ok(Array.isArray(await (await get('/admin/breakers')).json()));
  assert.ok(((await (await get('/admin/providers')).json()) as unknown[]).length >= 3);
  assert.ok(((await (await get('/admin/wallet')).json()) as { totalSat: number }).totalSat > 0);
  const metrics = await (await get('/metrics')).text();
  assert.match(metrics, /satroute_requests_total\{outcome="ok",provider="[^"]+"\} [1-9]/);
  assert.match(metrics, /satroute_spent_msat_total/);
  await books();
});
