// `satroute status`'s figures beside the wallet and the market (daemon/status.ts), and how uptime
// reads. Against a real daemon and world they are checked in test/daemon/api/ws-daemon.e2e.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase } from '../../db/sqlite.ts';
import { booksStatus, pendingSettlements } from '../../daemon/status.ts';
import { uptime } from '../../daemon/cli/status.ts';

test('a data directory that has never served a request shows nothing spent, nothing pending, no breaker, for the UTC day', () => {
  const db = openDatabase(':memory:');
  const at = Date.parse('2026-11-30T23:59:59.999Z');
  assert.deepEqual(booksStatus(db, at), { day: '2026-11-30', spent_today_msat: 0, requests_today: 0, pending_settlements: 0, breakers_not_closed: [] });
  assert.equal(pendingSettlements(db), 0);
  assert.equal(booksStatus(db, at + 1).day, '2026-12-01', 'a new day starts at midnight UTC');
  db.close();
});

test('uptime reads in its three largest units', () => {
  assert.deepEqual([0, 59, 90, 3_600, 3_725, 93_784, 86_400].map(uptime), ['0s', '59s', '1m 30s', '1h', '1h 2m 5s', '1d 2h 3m', '1d']);
});
