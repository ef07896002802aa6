// `satroute audit` and `audit verify` as the owner runs them: a separate process on a data directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet, type Proof } from '@cashu/cashu-ts';
import { LightningNetwork } from '../../world/lightning.ts';
import { startMint } from '../../world/mint.ts';
import { fundNow } from '../../wallet/world.ts';
import { openWallet } from '../../../wallet/open.ts';
import { toCashuProof } from '../../../wallet/store.ts';
import { openDatabase, databaseFile } from '../../../db/sqlite.ts';
import { RequestLedger } from '../../../daemon/requests/ledger.ts';
import { normalizePrice } from '../../../protocol/pricing.ts';
import { fillLedger } from '../requests/fixture.ts';
import { satroute } from './run.ts';


test('audit verify passes on a funded wallet and fails, naming the mint, when ecash was spent behind its back', async (t) => {
  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-audit-'));
  t.after(async () => {
    await mint.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const env = { SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: mint.url };

  let stolen: Proof[];
  {
    const { wallet, close } = openWallet({ dataDir: dir, mints: [mint.url] });
    await fundNow(wallet.ctx, ln, 300);
    // Someone with a copy of the database spends one of our proofs elsewhere.
    stolen = wallet.store.selectUnspent(mint.url, 'sat').slice(-1).map(toCashuProof);
    await close();
  }

  const ok = await satroute(env, 'audit', 'verify', '--json');
  assert.equal(ok.code, 0, ok.stderr);
  const report = JSON.parse(ok.stdout);
  assert.equal(report.ok, true);
  assert.equal(report.totals[0].funded, 300);
  assert.equal(report.totals[0].unspent, 300);

  const thief = new Wallet(mint.url);
  await thief.loadMint();
  await thief.receive({ mint: mint.url, proofs: stolen, unit: 'sat' });

  const bad = await satroute(env, 'audit', 'verify');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stdout, /DIFFERENCE: .*spent/i);
  assert.equal(bad.stderr.trim().split('\n').length, 1, 'one line on stderr');
  assert.match(bad.stderr, /invariant does not hold/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
});

test('audit prints the requests as a table with totals, as CSV and as JSON, filtered', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-audit-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const db = openDatabase(databaseFile(dir));
  fillLedger(db);
  db.close();
  const env = { SATROUTE_DATA_DIR: dir };

  const csv = await satroute(env, 'audit', '--format', 'csv', '--since', '2026-11-30', '--until', '2026-11-30T11:00Z');
  assert.equal(csv.code, 0, csv.stderr);
  assert.ok(csv.stdout.endsWith('\r\n'));
  assert.deepEqual(csv.stdout.split('\r\n').slice(0, -1).map((l) => l.split(',')[1]), ['request_id', 'a', 'b']);

  const json = await satroute(env, 'audit', '--json', '--client', 'phone', '--flagged');
  const r = JSON.parse(json.stdout);
  assert.deepEqual(r.requests.map((q: { request_id: string }) => q.request_id), ['d']);
  assert.deepEqual(r.totals.by_provider.map((p: { provider: string }) => p.provider), ['greedy']);

  const tableOut = await satroute(env, 'audit');
  assert.equal(tableOut.code, 0, tableOut.stderr);
  assert.match(tableOut.stdout, /^TIME\s+REQUEST\s+CLIENT\s+MODEL\s+PROVIDER/);
  assert.match(tableOut.stdout, /\s+b\s+laptop\s+model, "quoted"\s+greedy\s+succeeded\s+1000\/200\s+80\s+48\s+30\s+20\s+30\s+overcharged,refunded\s+2/);
  assert.match(tableOut.stdout, /Totals per provider:\nPROVIDER\s+ATTEMPTS[^\n]*\ngreedy\s+2\s+2\s+2/);
  assert.match(tableOut.stdout, /Totals per client:\nCLIENT[^\n]*\nlaptop\s+2/);
  assert.match(tableOut.stdout, /All: 4 requests, 4 succeeded, 2 flagged; sent 200 sat, change 95 sat, charged 100 sat \(expected 80 sat, reported 100 sat\)/);

  const attempts = await satroute(env, 'audit', '--attempts', '--provider', 'flaky', '--format', 'csv');
  assert.equal(attempts.stdout.split('\r\n')[1].split(',').slice(1, 5).join(','), 'b,1,laptop,flaky');

  const bad = await satroute(env, 'audit', '--format', 'xml');
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'satroute: --format must be table, csv or json, got "xml"\n');
});

test('audit verify names a request whose charge does not add up, beside a balanced wallet', async (t) => {
  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-audit-'));
  t.after(async () => {
    await mint.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const env = { SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: mint.url };
  {
    const { wallet, close } = openWallet({ dataDir: dir, mints: [mint.url] });
    await fundNow(wallet.ctx, ln, 100);
    const ledger = new RequestLedger(wallet.ctx.db);
    const price = normalizePrice({ sats_pricing: { prompt: 0.01, completion: 0.05 } })!;
    ledger.open({ id: 'req-x', client: 'c', endpoint: '/v1/chat/completions', modelRequested: 'tiny', stream: false, payment: 'xcashu' });
    // An attempt row that names a payment the wallet never made.
    ledger.startAttempt({ requestId: 'req-x', n: 1, providerId: 'p1', providerUrl: 'http://p1.test', modelId: 'tiny', mint: mint.url, paymentId: 'req-x.1', price, sentSat: 8, feeSat: 0 });
    await close();
  }
  const r = await satroute(env, 'audit', 'verify', '--offline', '--json');
  assert.equal(r.code, 1);
  const report = JSON.parse(r.stdout);
  assert.equal(report.wallet_ok, true);
  assert.equal(report.ok, false);
  assert.deepEqual(report.differences, ['request req-x attempt 1 (p1): the wallet has no payment req-x.1']);
  assert.equal(r.stderr, 'satroute: the request ledger does not add up: request req-x attempt 1 (p1): the wallet has no payment req-x.1\n');
  const human = await satroute(env, 'audit', 'verify', '--offline');
  assert.match(human.stdout, /Requests: 1 checked, 1 attempts\.\nDIFFERENCE: request req-x attempt 1 \(p1\): the wallet has no payment req-x\.1/);
});
