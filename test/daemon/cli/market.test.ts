// `satroute start`, `satroute providers` and `satroute models` as a user runs them: separate
// processes on one data directory, with the daemon running and after it stopped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { callDaemon } from '../../../daemon/control/server.ts';
import type { ModelView, ProviderView } from '../../../daemon/market.ts';
import { modelsTable, type ProviderRow } from '../../../daemon/cli/market.ts';
import { Breakers } from '../../../daemon/route/breaker.ts';
import { BreakerStore } from '../../../daemon/route/breaker-store.ts';
import { ProviderStats } from '../../../daemon/route/stats.ts';
import { StatsStore } from '../../../daemon/route/stats-store.ts';
import { databaseFile, openDatabase } from '../../../db/sqlite.ts';
import { gpt, storeMarket } from '../route/fixture.ts';
import { startRelay } from '../../world/relay.ts';
import { startProvider } from '../../world/provider.ts';
import { bin, root, satroute } from './run.ts';


async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('start discovers providers; providers and models show them from the daemon, then from disk after SIGTERM', async (t) => {
  const relay = await startRelay();
  t.after(() => relay.stop());
  const mint = 'http://127.0.0.1:3338';
  const alpha = await startProvider({ name: 'Alpha', relays: [relay.url], mints: [mint], models: [{ id: 'gpt-x', aliasIds: ['openai/gpt-x'], promptSatsPerToken: 0.00002, completionSatsPerToken: 0.00006, maxCostSats: 40 }] });
  t.after(() => alpha.stop());
  const ghost = await startProvider({ name: 'Ghost', relays: [relay.url], mints: [mint], models: [{ id: 'gpt-x', promptSatsPerToken: 0.00001, completionSatsPerToken: 0.00001 }], knobs: { dead: true } });
  t.after(() => ghost.stop());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-start-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env = { SATROUTE_DATA_DIR: dir, SATROUTE_RELAYS: relay.url, SATROUTE_LISTEN: '127.0.0.1:0' };

  const daemon = spawn(process.execPath, [bin, 'start', '--json'], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  daemon.stdout.on('data', (d) => (stdout += d));
  daemon.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => daemon.once('exit', (code) => r(code)));
  t.after(() => daemon.kill('SIGKILL'));

  await waitFor('daemon.json', () => fs.existsSync(path.join(dir, 'daemon.json')));
  const info = JSON.parse(fs.readFileSync(path.join(dir, 'daemon.json'), 'utf8')) as { pid: number; listen: string; startedAt: string };
  assert.equal(info.pid, daemon.pid);
  assert.match(info.listen, /^127\.0\.0\.1:\d+$/, 'the port actually bound, not 0');
  assert.notEqual(info.listen, '127.0.0.1:0');
  const health = await fetch(`http://${info.listen}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { ok: boolean }).ok, true);
  assert.equal(fs.statSync(path.join(dir, 'daemon.json')).mode & 0o777, 0o600);
  await waitFor('the start line', () => stdout.includes('\n'));
  assert.equal(JSON.parse(stdout.split('\n')[0]).data_dir, dir);

  await waitFor('both providers probed', async () => {
    const list = await callDaemon<ProviderView[]>(dir, 'market.providers');
    return list.length === 2 && list.every((p) => p.status !== 'announced');
  });

  const json = await satroute(env, 'providers', '--json');
  assert.equal(json.code, 0, json.stderr);
  const providers = JSON.parse(json.stdout) as ProviderView[];
  assert.deepEqual(
    providers.map((p) => [p.name, p.status, p.models]),
    [
      ['Alpha', 'reachable', 1],
      ['Ghost', 'unreachable', 0],
    ],
  );
  assert.equal(providers[0].url, alpha.url);
  assert.deepEqual(providers[0].mints, [mint]);
  assert.equal(providers[0].cheapest?.model, 'gpt-x');
  assert.equal(providers[0].cheapest?.prompt_sats_per_mtok, 20);

  const human = await satroute(env, 'providers');
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^NAME\s+URL\s+STATUS\s+MODELS\s+CHEAPEST/);
  assert.match(human.stdout, new RegExp(`Alpha\\s+${alpha.url.replace(/[.]/g, '\\.')}\\s+reachable\\s+1\\s+gpt-x 20/60\\s+127\\.0\\.0\\.1:3338\\s+\\d+s ago`));
  assert.match(human.stdout, /Ghost\s+\S+\s+unreachable \(\d+s\)\s+0\s+-/);
  assert.match(human.stdout, /2 providers, 1 usable/);

  const models = await satroute(env, 'models', '--json');
  assert.equal(models.code, 0, models.stderr);
  const catalogue = JSON.parse(models.stdout) as ModelView[];
  assert.deepEqual(
    catalogue.map((m) => [m.id, m.providers, m.cheapest?.provider_name, m.aliases]),
    [['gpt-x', 1, 'Alpha', ['openai/gpt-x']]],
  );
  const modelsHuman = await satroute(env, 'models');
  assert.match(modelsHuman.stdout, /gpt-x\s+1\s+20\s+60\s+40\s+Alpha\s+openai\/gpt-x/);

  const status = await satroute(env, 'status', '--json');
  assert.equal(status.code, 0, status.stderr);
  assert.deepEqual(
    (({ running, pid, providers, usable_providers, models }) => ({ running, pid, providers, usable_providers, models }))(JSON.parse(status.stdout)),
    { running: true, pid: daemon.pid, providers: 2, usable_providers: 1, models: 1 },
  );

  daemon.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  const stopped = await satroute(env, 'status');
  assert.match(stopped.stdout, /daemon:\s+not running/);
  assert.match(stopped.stdout, /market:\s+2 providers \(1 usable\), 1 models/);
  assert.ok(!fs.existsSync(path.join(dir, 'daemon.json')), 'daemon.json removed on SIGTERM');
  assert.match(stderr, /"msg":"satroute stopped"/);

  // no daemon now: the same answers come from the data directory
  const after = await satroute(env, 'providers', '--json');
  assert.equal(after.code, 0, after.stderr);
  assert.deepEqual(
    (JSON.parse(after.stdout) as ProviderView[]).map((p) => [p.name, p.status]),
    [
      ['Alpha', 'reachable'],
      ['Ghost', 'unreachable'],
    ],
  );
  const modelsAfter = await satroute(env, 'models', '--json');
  assert.deepEqual((JSON.parse(modelsAfter.stdout) as ModelView[]).map((m) => m.id), ['gpt-x']);
});

test('providers and models on an empty data directory say how to get a market', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-empty-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env = { SATROUTE_DATA_DIR: dir };
  const p = await satroute(env, 'providers');
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /No providers known yet/);
  const m = await satroute(env, 'models', '--json');
  assert.equal(m.code, 0, m.stderr);
  assert.deepEqual(JSON.parse(m.stdout), []);
});

test('a model priced from USD (no sats price listed) is marked in the models table', () => {
  const view = { id: 'm', name: 'm', aliases: [], providers: 1, context_length: null, seen_at: null, cheapest: { provider: 'x', provider_name: 'X', prompt_nmsat: 1e6, completion_nmsat: 2e6, request_msat: 0, max_cost_msat: 5000, prompt_sats_per_mtok: 1, completion_sats_per_mtok: 2, source: 'usd_pricing' as const } };
  const text = modelsTable([view]);
  assert.match(text, /^m\s+1\s+1\*\s+2\s+5\s+X/m);
  assert.match(text, /\* no sats price listed: converted from the USD price at the configured usdPerSat/);
  assert.doesNotMatch(modelsTable([{ ...view, cheapest: { ...view.cheapest, source: 'sats_pricing' } }]), /\*/);
});

test('providers shows each breaker and why a provider is avoided, from the data directory when no daemon runs', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-health-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const db = openDatabase(databaseFile(dir));
  const now = Date.now();
  storeMarket(db, [
    { name: 'Fine', models: [gpt(0.00001, 0.00003)] },
    { name: 'Tripped', models: [gpt(0.00001, 0.00003)] },
    { name: 'Sly', models: [gpt(0.00001, 0.00003)] },
  ]);
  db.prepare('UPDATE market_providers SET last_seen_at = ?').run(now);
  const breakers = new Breakers({ store: new BreakerStore(db), random: () => 0 });
  for (let i = 0; i < 3; i++) breakers.record(breakers.acquire('pk-Tripped:d', 'gpt-x')!, { kind: 'failure', scope: 'provider', error: 'connection refused' });
  const stats = new ProviderStats({ store: new StatsStore(db) });
  for (let i = 0; i < 4; i++) stats.observe({ providerId: 'pk-Sly:d', modelId: 'gpt-x', ok: true, expectedMsat: 1000, chargedMsat: 2000 });
  stats.stop();
  db.close();

  const human = await satroute({ SATROUTE_DATA_DIR: dir }, 'providers');
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /Fine\s+https:\/\/fine\.example\s+reachable\s/);
  assert.match(human.stdout, /Tripped\s+https:\/\/tripped\.example\s+breaker open \(\d+s\)\s/);
  assert.match(human.stdout, /Sly\s+https:\/\/sly\.example\s+avoided \(overcharging\)\s/);
  assert.match(human.stdout, /^Sly: avoided, charged 1\.\d+x its listed price on recent requests/m);
  assert.match(human.stdout, /^Tripped: breaker open after: connection refused$/m);

  const json = await satroute({ SATROUTE_DATA_DIR: dir }, 'providers', '--json');
  const rows = JSON.parse(json.stdout) as ProviderRow[];
  const by = Object.fromEntries(rows.map((r) => [r.name, r.routing]));
  assert.equal(by.Fine, null);
  assert.equal(by.Tripped?.breaker?.state, 'open');
  assert.equal(by.Tripped?.breaker?.failures, 3);
  assert.equal(by.Sly?.avoided?.reason, 'overcharging');
});
