import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startRelay } from '../world/relay.ts';
import { startNwcService } from '../world/nwc.ts';
import { LightningNetwork } from '../world/lightning.ts';
import { CashuWallet } from '../../wallet/index.ts';
import { nwcFilePath, loadNwcUri, parseNwcUri } from '../../wallet/nwc.ts';
import { FundingError, NwcError } from '../../wallet/errors.ts';
import { openDatabase } from '../../db/sqlite.ts';
import { createLogger } from '../../protocol/logger.ts';
import { tempDir, testMint } from './world.ts';

async function setup(t: TestContext, balanceSat: number, extra: Partial<ConstructorParameters<typeof CashuWallet>[0]> = {}) {
  const ln = new LightningNetwork();
  const relay = await startRelay();
  const nwc = await startNwcService({ relayUrl: relay.url, lightning: ln, balanceSat });
  const mint = await testMint(t, ln);
  const dir = tempDir(t);
  const db = openDatabase(path.join(dir, 'satroute.sqlite'));
  const logs: string[] = [];
  const wallet = new CashuWallet({ db, dataDir: dir, mints: [mint.url], logger: createLogger({ level: 'debug', write: (l) => logs.push(l) }), ...extra });
  t.after(async () => {
    await wallet.stop();
    db.close();
    await nwc.stop();
    await relay.stop();
  });
  return { ln, relay, nwc, mint, dir, wallet, logs };
}

test('connecting NWC checks the wallet, stores the URI 0600, and never logs its secret', async (t) => {
  const { nwc, dir, wallet, logs } = await setup(t, 5000);
  const info = await wallet.connectNwc(nwc.uri);
  assert.equal(info.balanceMsat, 5_000_000);
  assert.ok(info.methods.includes('pay_invoice'));
  assert.equal(fs.statSync(nwcFilePath(dir)).mode & 0o777, 0o600);
  assert.equal(loadNwcUri(dir), nwc.uri);
  const secret = new URL(nwc.uri).searchParams.get('secret')!;
  assert.ok(logs.length > 0);
  assert.ok(logs.every((l) => !l.includes(secret)), 'the NWC secret is not in the logs');
  assert.ok(!JSON.stringify(info).includes(secret));
});

test('with NWC connected, fund pays the invoice by itself and mints the sats', async (t) => {
  const { nwc, mint, wallet } = await setup(t, 5000);
  await wallet.connectNwc(nwc.uri);
  const r = await wallet.fund(1200, { pollMs: 10, timeoutMs: 10_000 });
  assert.equal(r.paidVia, 'nwc');
  assert.equal(r.quote.state, 'issued');
  assert.equal(wallet.balance().totalSat, 1200);
  assert.equal(nwc.payments.length, 1);
  assert.equal(nwc.balanceMsat, 5_000_000 - 1_200_000);
  assert.equal(mint.stats().mintedFromLightning, 1200);
  assert.equal((await wallet.verify({ checkMints: true })).ok, true);
});

test('an underfunded NWC wallet gives a clear error and nothing is minted', async (t) => {
  const { nwc, mint, wallet } = await setup(t, 100);
  await wallet.connectNwc(nwc.uri);
  await assert.rejects(wallet.fund(1000, { pollMs: 10, timeoutMs: 10_000 }), (err: Error) => {
    assert.ok(err instanceof FundingError);
    assert.match(err.message, /insufficient balance.*nothing was minted/);
    return true;
  });
  assert.equal(wallet.balance().totalSat, 0);
  assert.deepEqual(wallet.history(), []);
  assert.equal(mint.stats().issued, 0);
  assert.equal(nwc.balanceMsat, 100_000);
});

test('a malformed or unreachable NWC connection is refused and not stored', async (t) => {
  const { dir, wallet } = await setup(t, 0);
  assert.throws(() => parseNwcUri('nostr+walletconnect://nothex?relay=ws://x&secret=00'), NwcError);
  await assert.rejects(wallet.connectNwc('https://example.com'), NwcError);
  assert.equal(fs.existsSync(nwcFilePath(dir)), false);
});

test('auto top-up funds through NWC under the threshold, then waits out the interval', async (t) => {
  let now = Date.parse('2026-05-01T12:00:00Z');
  const { nwc, wallet } = await setup(t, 10_000, { clock: () => now, autoTopup: { thresholdSat: 500, amountSat: 2000, minIntervalMs: 3_600_000, dailyCapSat: 3000 } });
  assert.deepEqual(await wallet.maybeTopUp(), { fund: false, reason: 'above_threshold' }); // no NWC yet: nothing to do
  await wallet.connectNwc(nwc.uri);
  const first = await wallet.maybeTopUp();
  assert.equal(first.fund, true);
  assert.equal(wallet.balance().totalSat, 2000);
  await wallet.withdraw(nwc.node.createInvoice(1_700_000).bolt11); // spend most of it
  assert.ok(wallet.balance().totalSat < 500);
  assert.equal((await wallet.maybeTopUp()).fund, false); // too soon
  now += 3_600_000;
  const second = await wallet.maybeTopUp();
  assert.deepEqual([second.fund, second.fund && second.amountSat], [true, 1000]); // the daily cap leaves 1000
  now += 3_600_000;
  assert.deepEqual(await wallet.maybeTopUp(), { fund: false, reason: 'above_threshold' });
});
