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
    { name: 'cheap', mints: ['mint-a'], announce: false, models: [{ id: MODEL, promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, maxCostSats: 200 }] },
    // Lists its mint with a trailing slash and refuses any other spelling (a real node compares them as exact strings).
    { name: 'dear', mints: ['mint-b'], mintSpelling: 'trailing-slash', announce: false, knobs: { foreignMint: 'refuse' }, models: [{ id: MODEL, promptSatsPerToken: 0.03, completionSatsPerToken: 0.12, maxCostSats: 400 }] },
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
