// Power-cut style tests: a child process does the wallet work and is killed with SIGKILL at a
// chosen point; a fresh wallet on the same database then recovers. The mint stays up here.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LightningNetwork } from '../world/lightning.ts';
import { CashuWallet } from '../../wallet/index.ts';
import { openDatabase } from '../../db/sqlite.ts';
import { outsideToken, tempDir, testMint } from './world.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const childScript = path.join(root, 'test/wallet/crash-child.ts');

function startChild(t: TestContext, args: string[]): { child: ChildProcess; line: (prefix: string) => Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', childScript, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  let err = '';
  const waiters: { prefix: string; resolve: (l: string) => void }[] = [];
  const check = () => {
    for (const l of out.split('\n')) for (const w of [...waiters]) if (l.startsWith(w.prefix)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(l); }
  };
  child.stdout!.on('data', (d) => { out += d; check(); });
  child.stderr!.on('data', (d) => { err += d; });
  const line = (prefix: string) => new Promise<string>((resolve, reject) => {
    waiters.push({ prefix, resolve });
    check();
    child.once('exit', (code) => setTimeout(() => reject(new Error(`child exited ${code} before "${prefix}": ${err}`)), 50));
  });
  return { child, line };
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Wait until a query on the (WAL) database returns a row, i.e. the child committed that far. */
async function until(file: string, sql: string, ...args: unknown[]): Promise<void> {
  const db = openDatabase(file);
  try {
    for (let i = 0; i < 500; i++) {
      if (db.prepare(sql).get(...args)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`timed out waiting for: ${sql}`);
  } finally {
    db.close();
  }
}

function reopen(t: TestContext, dir: string, mintUrl: string): CashuWallet {
  const db = openDatabase(path.join(dir, 'satroute.sqlite'));
  t.after(() => db.close());
  return new CashuWallet({ db, dataDir: dir, mints: [mintUrl] });
}

test('killed after the quote was saved and paid, before minting: the next start mints it exactly once', async (t) => {
  const ln = new LightningNetwork();
  const mint = await testMint(t, ln);
  const dir = tempDir(t);
  const { child, line } = startChild(t, [dir, mint.url, 'quote', '500']);
  const [, quoteId, bolt11] = (await line('QUOTE')).split(' ');
  ln.pay(bolt11);
  await kill(child);

  const wallet = reopen(t, dir, mint.url);
  const report = await wallet.recover();
  assert.deepEqual(report.steps[0].result, [{ quoteId, state: 'issued' }]);
  assert.equal(wallet.balance().totalSat, 500);
  await wallet.recover(); // a second start mints nothing more
  assert.equal(wallet.balance().totalSat, 500);
  assert.equal(mint.stats().outstanding, 500);
  assert.deepEqual(wallet.history().map((r) => [r.kind, r.amount]), [['funding', 500]]);
  const v = await wallet.verify({ checkMints: true });
  assert.equal(v.ok, true, v.differences.join('; '));
});

test('killed while the mint call is in flight: the outcome is settled on restart and the invariant holds', async (t) => {
  const ln = new LightningNetwork();
  const mint = await testMint(t, ln);
  const dir = tempDir(t);
  const file = path.join(dir, 'satroute.sqlite');
  const first = startChild(t, [dir, mint.url, 'quote', '300']);
  const [, quoteId, bolt11] = (await first.line('QUOTE')).split(' ');
  ln.pay(bolt11);
  await kill(first.child);

  mint.knobs.latencyMs = 300; // the mint answers slowly; we kill the child in between
  const second = startChild(t, [dir, mint.url, 'mint', quoteId]);
  await until(file, `SELECT 1 FROM wallet_mint_quotes WHERE quote_id = ? AND state = 'minting'`, quoteId);
  await kill(second.child);
  mint.knobs.latencyMs = 0;
  await new Promise((r) => setTimeout(r, 400)); // the mint finishes the request the child sent

  const wallet = reopen(t, dir, mint.url);
  await wallet.recover();
  const q = wallet.getFundingQuote(quoteId);
  // Whether or not the child's mint call reached the mint, the sats arrive exactly once:
  // minted afresh, or the lost answer recovered through NUT-09 restore. Never a loss.
  assert.equal(q.state, 'issued');
  assert.equal(wallet.balance().totalSat, 300);
  assert.equal(wallet.history({ kind: 'loss' }).length, 0);
  const v = await wallet.verify({ checkMints: true });
  assert.equal(v.ok, true, v.differences.join('; '));
});

test('killed during a withdrawal: the next start settles the melt from the mint, change included', async (t) => {
  const ln = new LightningNetwork();
  const mint = await testMint(t, ln);
  const dir = tempDir(t);
  const file = path.join(dir, 'satroute.sqlite');
  {
    const w = reopen(t, dir, mint.url);
    const q = await w.createFundingQuote(1000);
    ln.pay(q.bolt11);
    await w.waitForFunding(q.quoteId, { pollMs: 5 });
  }
  const release = mint.holdMelts();
  const invoice = ln.node('shop').createInvoice(400_000);
  const { child, line } = startChild(t, [dir, mint.url, 'withdraw', invoice.bolt11]);
  await line('WITHDRAWING');
  await until(file, `SELECT 1 FROM wallet_melts WHERE state = 'pending'`);
  await new Promise((r) => setTimeout(r, 100)); // the melt request reaches the mint
  await kill(child);

  const wallet = reopen(t, dir, mint.url);
  await wallet.recover(); // the melt is still held: it stays pending
  assert.ok(wallet.balance().pendingSat > 0);
  release();
  await new Promise((r) => setTimeout(r, 50));
  await wallet.recover();
  assert.equal(wallet.balance().pendingSat, 0);
  assert.ok(ln.lookup(invoice.paymentHash)?.paidAtMs, 'the invoice was paid');
  const fee = -(wallet.history({ kind: 'withdrawal_fee' })[0]?.amount ?? 0);
  assert.equal(wallet.balance().totalSat, 1000 - 400 - fee);
  const v = await wallet.verify({ checkMints: true });
  assert.equal(v.ok, true, v.differences.join('; '));
});

test('killed while a received token is being swapped: settled on restart, never counted twice', async (t) => {
  const ln = new LightningNetwork();
  const mint = await testMint(t, ln);
  const dir = tempDir(t);
  const file = path.join(dir, 'satroute.sqlite');
  const token = await outsideToken(ln, mint.url, 77);
  mint.knobs.latencyMs = 300; // the swap request sits at the mint while we kill the child
  const { child, line } = startChild(t, [dir, mint.url, 'receive', token]);
  await line('RECEIVING');
  await until(file, `SELECT 1 FROM wallet_swaps WHERE state = 'prepared'`);
  await kill(child);
  mint.knobs.latencyMs = 0;
  await new Promise((r) => setTimeout(r, 400)); // the mint completes the swap the child sent

  const wallet = reopen(t, dir, mint.url);
  const report = await wallet.recover();
  const { swaps: [swap] } = report.steps.find((s) => s.name === 'swaps and payments')!.result as { swaps: { status: string }[] };
  // Completed afresh, or the lost answer recovered through NUT-09 restore: 77 sat, no loss.
  assert.equal(swap.status, 'done', JSON.stringify(report));
  assert.equal(wallet.balance().totalSat, 77);
  assert.equal(wallet.history({ kind: 'loss' }).length, 0);
  await wallet.recover();
  assert.equal(wallet.history({ kind: 'receive' }).length, 1);
  const v = await wallet.verify({ checkMints: true });
  assert.equal(v.ok, true, v.differences.join('; '));
});
