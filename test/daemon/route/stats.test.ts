import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProviderStats } from '../../../daemon/route/stats.ts';
import { StatsStore } from '../../../daemon/route/stats-store.ts';
import { openDatabase } from '../../../db/sqlite.ts';

const T0 = 1_800_000_000_000;
const HOUR = 3_600_000;

function stats(o: { store?: StatsStore } = {}) {
  const clock = { now: T0 };
  return { clock, s: new ProviderStats({ clock: () => clock.now, store: o.store }) };
}

test('a provider never seen is neutral: full success, charging its list price, nothing to avoid', () => {
  const { s } = stats();
  assert.deepEqual(s.rank('new'), { chargeRatio: 1, successRate: 1, unrefundedSuccessRate: 1, refundedPerSuccess: 0, latencyMs: undefined, lossPerAttemptMsat: 0, avoid: null });
  assert.equal(s.promptFactor('new', 'm'), 1);
  assert.equal(s.completionTokens('new', 'm'), undefined);
});

test('observed overcharging and failures move the rank; a few honest requests do not look like overcharging', () => {
  const { s } = stats();
  for (let i = 0; i < 4; i++) s.observe({ providerId: 'sly', modelId: 'm', ok: true, expectedMsat: 1000, chargedMsat: 2000 });
  for (let i = 0; i < 4; i++) s.observe({ providerId: 'flaky', modelId: 'm', ok: i % 2 === 0 });
  for (let i = 0; i < 4; i++) s.observe({ providerId: 'honest', modelId: 'm', ok: true, expectedMsat: 1000, chargedMsat: 1010 }); // BTC/USD drift
  assert.ok(Math.abs(s.rank('sly').chargeRatio - (4 * 2 + 2) / 6) < 1e-9);
  assert.equal(s.rank('sly').avoid?.reason, 'overcharging');
  assert.ok(Math.abs(s.rank('flaky').successRate - 4 / 6) < 1e-9);
  assert.equal(s.rank('flaky').avoid, null);
  assert.ok(s.rank('honest').chargeRatio < 1.01);
  assert.equal(s.rank('honest').avoid, null);
});

test('old evidence fades: an overcharger is forgiven after some half-lives and tried again', () => {
  const { s, clock } = stats();
  for (let i = 0; i < 10; i++) s.observe({ providerId: 'sly', modelId: 'm', ok: true, expectedMsat: 1000, chargedMsat: 2000 });
  assert.equal(s.rank('sly').avoid?.reason, 'overcharging');
  clock.now += 6 * HOUR; // one half-life: weight 10 -> 5
  assert.equal(s.rank('sly').avoid?.reason, 'overcharging', 'cached ranks expire, the evidence is still strong');
  clock.now += 6 * HOUR; // two: 2.5, under the 3 needed to avoid
  assert.equal(s.rank('sly').avoid, null);
  assert.ok(s.rank('sly').chargeRatio > 1.1, 'still ranked by what it did');
});

test('token calibration: reported prompt tokens against our estimate, and observed completions per provider and model', () => {
  const { s } = stats();
  s.observe({ providerId: 'a', modelId: 'm', usage: { estimatedPromptTokens: 100, promptTokens: 130, completionTokens: 40 } });
  s.observe({ providerId: 'a', modelId: 'm', usage: { estimatedPromptTokens: 200, promptTokens: 260, completionTokens: 60 } });
  assert.ok(Math.abs(s.promptFactor('a', 'm') - (1.3 * 2 + 2) / 4) < 1e-6);
  assert.ok(Math.abs(s.completionTokens('a', 'm')! - 50) < 1e-6);
  assert.ok(Math.abs(s.completionTokens('b', 'm')! - 50) < 1e-6, "another provider of the model starts from the model's mean");
  assert.equal(s.promptFactor('b', 'm'), 1);
});

function tempFile(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-stats-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'satroute.sqlite');
}

test('statistics survive a restart (written on flush): an avoided provider stays avoided', (t) => {
  const file = tempFile(t);
  const db1 = openDatabase(file);
  const a = stats({ store: new StatsStore(db1) });
  for (let i = 0; i < 4; i++) a.s.observe({ providerId: 'sly', modelId: 'm', ok: true, expectedMsat: 1000, chargedMsat: 2000, latencyMs: 200, usage: { estimatedPromptTokens: 10, promptTokens: 20, completionTokens: 7 } });
  a.s.stop(); // flushes
  db1.close();
  const db2 = openDatabase(file);
  t.after(() => db2.close());
  const b = stats({ store: new StatsStore(db2) });
  assert.equal(b.s.rank('sly').avoid?.reason, 'overcharging');
  assert.equal(b.s.rank('sly').latencyMs, 200);
  assert.ok(b.s.promptFactor('sly', 'm') > 1.5);
  assert.deepEqual(b.s.views().map((v) => [v.provider_id, Math.round(v.attempts)]), [['sly', 4]]);
});

test('becoming avoided, and being forgiven, is announced once each', () => {
  const { s, clock } = stats();
  const events: [string, string | null][] = [];
  s.on('avoidance', (c) => events.push([c.providerId, c.avoid?.reason ?? null]));
  for (let i = 0; i < 6; i++) s.observe({ providerId: 'sly', modelId: 'm', ok: true, expectedMsat: 1000, chargedMsat: 2500 });
  clock.now += 24 * HOUR;
  s.rank('sly');
  s.rank('sly');
  assert.deepEqual(events, [
    ['sly', 'overcharging'],
    ['sly', null],
  ]);
});
