import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { Wallet, type Proof } from '@cashu/cashu-ts';
import { loadConfig } from '../../daemon/config.ts';
import { callDaemon } from '../../daemon/control/server.ts';
import { startDaemon } from '../../daemon/daemon.ts';
import { databaseFile } from '../../db/sqlite.ts';
import type { Logger } from '../../protocol/logger.ts';
import { LightningNetwork } from '../world/lightning.ts';
import { tempDir, testMint } from '../wallet/world.ts';

function recordingLogger(): Logger & { lines: { level: string; msg: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

test('after an unclean stop the daemon checks its unspent proofs with the mint before it listens: one spent behind its back (a commit a power cut took back) is booked as a loss, never paid with', async (t) => {
  const ln = new LightningNetwork();
  const mint = await testMint(t, ln);
  const dir = tempDir(t, 'satroute-durability-');
  const config = loadConfig({ SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: mint.url, SATROUTE_RELAYS: '', SATROUTE_LISTEN: '127.0.0.1:0' });

  const first = await startDaemon(config);
  assert.equal(typeof first.wallet.ctx.flush, 'function', "the WAL thread's flush is the wallet's (durability 'interval', the default)");
  const quote = await callDaemon<{ quote_id: string; bolt11: string }>(dir, 'wallet.fund.create', { amount_sat: 400 });
  ln.pay(quote.bolt11);
  assert.equal((await callDaemon<{ state: string }>(dir, 'wallet.fund.status', { quote_id: quote.quote_id })).state, 'issued');
  await first.stop();

  // What a power cut can leave behind: a proof the database still counts unspent, although it
  // went out in a token that was redeemed (here: spent by someone else's wallet), and a run that
  // never recorded its stop.
  const db = new Database(databaseFile(dir));
  const row = db.prepare(`SELECT secret, c, keyset_id, amount FROM wallet_proofs WHERE state = 'unspent' ORDER BY amount DESC LIMIT 1`).get() as { secret: string; c: string; keyset_id: string; amount: number };
  db.prepare('UPDATE daemon_runs SET stopped_at = NULL WHERE id = (SELECT MAX(id) FROM daemon_runs)').run();
  db.close();
  const outside = new Wallet(mint.url, { unit: 'sat' });
  await outside.loadMint();
  await outside.receive([{ id: row.keyset_id, amount: row.amount, secret: row.secret, C: row.c } as unknown as Proof]);

  const logger = recordingLogger();
  const second = await startDaemon(config, { logger });
  t.after(() => second.stop());
  assert.equal(second.wallet.balance().totalSat, 400 - row.amount, 'the spent proof no longer counts');
  const warned = logger.lines.find((l) => l.level === 'warn' && /last stop was unclean/.test(l.msg));
  assert.ok(warned, 'the owner is told');
  assert.deepEqual((warned!.fields!.mints as { spent: number }[]).map((m) => m.spent), [row.amount]);
  const verify = await callDaemon<{ ok: boolean; differences: string[] }>(dir, 'wallet.verify');
  assert.equal(verify.ok, true, verify.differences.join('; '));
  await second.stop();

  // That stop was clean and nothing is owed: the next start does not sweep again.
  const quiet = recordingLogger();
  const third = await startDaemon(config, { logger: quiet });
  t.after(() => third.stop());
  assert.ok(!quiet.lines.some((l) => /last stop was unclean/.test(l.msg)));
});
