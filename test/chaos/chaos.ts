// Chaos with money in flight (issue 13), `npm run test:chaos`: paid requests - HTTP and WebSocket,
// streaming and not, X-Cashu and session - against test/world while the daemon (`satroute start`, a real process) is
// killed with SIGKILL at seeded moments, at least twice in every phase of phases.ts, and started
// again each time; then the mint, a provider and the relay go down for a while. At the end
// `satroute audit verify` passes, every request is settled or explicitly recorded, and the sats
// add up exactly: funded = wallet + held in sessions + charged (by token and in sessions) + fees +
// evidenced losses (books.ts).
// Not a *.test.ts file: the main suite does not run it (minutes, and a busy machine). Seed:
// CHAOS_SEED (default 13); every kill's phase and moment follow from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { seededRandom, startWorld, type Scenario } from '../world/index.ts';
import { satroute } from '../daemon/cli/run.ts';
import { control, kill9, startDaemonProcess, until, type DaemonProcess } from './daemon-process.ts';
import { calm, PHASES, type PhaseCtx } from './phases.ts';
import { send, traffic, type Sent } from './traffic.ts';
import type { ProviderExposure } from '../../daemon/requests/session-contract.ts';
import { checkBooks, explicitlyOpen, openPayments } from './books.ts';
import { peek } from './peek.ts';

const SEED = Number(process.env.CHAOS_SEED ?? 13);
// A shorter run while working on one phase: CHAOS_PHASES="in flight,settling" CHAOS_KILLS_PER_PHASE=1 CHAOS_EXTRA_KILLS=0.
const ONLY = process.env.CHAOS_PHASES?.split(',').map((x) => x.trim());
const KILLS_PER_PHASE = Number(process.env.CHAOS_KILLS_PER_PHASE ?? 2);
const EXTRA_KILLS = Number(process.env.CHAOS_EXTRA_KILLS ?? 1);
const FULL = !ONLY && KILLS_PER_PHASE >= 2 && EXTRA_KILLS >= 0;
const MODEL = 'm';
const FUND_SAT = 4000;

const model = (prompt: number, completion: number) => ({ id: MODEL, promptSatsPerToken: prompt, completionSatsPerToken: completion, contextLength: 1000, maxCompletionTokens: 200 });
const SCENARIO: Scenario = {
  description: 'Chaos: three honest providers on one mint with an input fee (the dearest vanishes at the end), NWC to fund from',
  seed: SEED,
  mints: [{ name: 'main', inputFeePpk: 100 }],
  nwcBalanceSat: 20_000,
  providers: [
    { name: 'alpha', mints: ['main'], models: [model(0.02, 0.08)] },
    { name: 'beta', mints: ['main'], models: [model(0.03, 0.12)] },
    { name: 'gamma', mints: ['main'], models: [model(0.05, 0.2)] },
  ],
};

/** A seeded shuffle of every phase KILLS_PER_PHASE times, plus EXTRA_KILLS drawn at random. */
function schedule(random: () => number): number[] {
  const chosen = PHASES.map((p, i) => (ONLY && !ONLY.includes(p.name) ? -1 : i)).filter((i) => i >= 0);
  const order = chosen.flatMap((i) => Array.from({ length: KILLS_PER_PHASE }, () => i));
  for (let i = 0; i < EXTRA_KILLS; i++) order.push(chosen[Math.floor(random() * chosen.length)]);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

test('SIGKILL at any phase, then the mint, a provider and the relay down: nothing lost, every sat adds up', { timeout: 600_000 }, async (t) => {
  const random = seededRandom(SEED);
  const world = await startWorld(SCENARIO);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-chaos-'));
  let daemon: DaemonProcess | null = null;
  t.after(async () => {
    if (daemon && daemon.child.exitCode === null) await kill9(daemon);
    await world.stop();
    if (!process.env.CHAOS_KEEP) fs.rmSync(dir, { recursive: true, force: true });
    else t.diagnostic(`data directory kept: ${dir}`);
  });
  const env = {
    SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: world.mints[0].url, SATROUTE_RELAYS: world.relay.url,
    SATROUTE_PROVIDERS: world.providers.map((p) => p.url).join(','), SATROUTE_LISTEN: '127.0.0.1:0',
    SATROUTE_FROM_SOURCE: '1', SATROUTE_LOG_LEVEL: 'warn',
  };
  // Streams pay from session balances by default, other requests by token (traffic.ts mixes both
  // ways, and the other way asked for explicitly). Sessions idle 4 s are refunded (the sweep runs
  // every second), so balances come home - and are killed coming home - while traffic flows.
  fs.writeFileSync(path.join(dir, 'satroute.json'), JSON.stringify({ payment: { idleRefundMs: 4_000 } }) + '\n', { mode: 0o600 });
  const start = async () => {
    daemon = await startDaemonProcess(env, world.providers.length);
    return daemon;
  };

  // Funded once over Lightning, NWC connected, one client key.
  await start();
  const quotes: PhaseCtx['quotes'] = [];
  const first = await control<{ quote_id: string; bolt11: string }>(dir, 'wallet.fund.create', { amount_sat: FUND_SAT });
  quotes.push({ id: first.quote_id, amountSat: FUND_SAT });
  world.lightning.pay(first.bolt11);
  assert.equal((await control<{ state: string }>(dir, 'wallet.fund.status', { quote_id: first.quote_id })).state, 'issued');
  await control(dir, 'wallet.nwc', { uri: world.nwc.uri });
  const { key } = await control<{ key: string }>(dir, 'keys.create', { name: 'chaos' });
  const modelsListed = async () => ((await fetch(`${daemon!.base}/v1/models`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.json())) as { data: unknown[] }).data.length > 0;
  await until(modelsListed, 'the market to offer the model');

  let up = true;
  const load = traffic({ base: () => (up && daemon ? daemon.base : null), key, model: MODEL, workers: 2, random, pauseMs: 40 });
  const phaseSent: Promise<unknown>[] = [];
  let n = 1_000_000;
  const kills: { phase: string; seen: string; ms: number; restartMs: number }[] = [];

  for (const i of schedule(random)) {
    const phase = PHASES[i];
    const ctx: PhaseCtx = { world, daemon: daemon!, dir, key, model: MODEL, random, quotes, n: () => n++, record: (p) => phaseSent.push(p) };
    const t0 = Date.now();
    const seen = await phase.run(ctx);
    up = false;
    await kill9(daemon!);
    const ms = Date.now() - t0;
    calm(world);
    await start();
    await until(modelsListed, 'the market to offer the model again');
    kills.push({ phase: phase.name, seen, ms, restartMs: Date.now() - t0 - ms });
    up = true;
    await new Promise((r) => setTimeout(r, 500)); // traffic on the restarted daemon before the next phase
  }
  for (const k of kills) t.diagnostic(`SIGKILL ${k.phase} after ${k.ms} ms: ${k.seen}; back up in ${k.restartMs} ms`);

  // A provider vanishing for good (its port closed, its database gone) while it holds a session
  // of ours: what it held is lost - with evidence, bounded by its cap - once the idle refund has
  // asked it again and again (the outages below run meanwhile).
  const gamma = world.provider('gamma');
  const opened = await send('http-stream', daemon!.base, key, MODEL, n++, { provider: gamma.url });
  const atGamma = (await control<{ session_exposure: ProviderExposure[] }>(dir, 'daemon.status')).session_exposure.find((e) => e.providerUrl === gamma.url);
  assert.ok(atGamma && atGamma.heldSat > 0, `a session balance at gamma before it vanishes (${opened.outcome} ${opened.detail ?? ''})`);
  const vanished = [{ url: gamma.url, capSat: atGamma.capSat }];
  gamma.knobs.vanished = true;
  t.diagnostic(`gamma vanished holding ${atGamma.heldSat} sat (cap ${atGamma.capSat})`);

  // Outages while the daemon runs and traffic flows: each down for a while, then back.
  const down = async (what: string, off: () => Promise<void>, on: () => Promise<void>, ms: number) => {
    await off();
    await new Promise((r) => setTimeout(r, ms));
    await on();
    t.diagnostic(`${what} was down ${ms} ms`);
  };
  const mint = world.mints[0];
  await down('the mint', () => mint.setDown(true), () => mint.setDown(false), 2_500);
  await down('provider alpha', () => world.provider('alpha').setDead(true), () => world.provider('alpha').setDead(false), 2_000);
  await down('the relay', () => world.relay.down(), () => world.relay.up(), 2_000);
  await new Promise((r) => setTimeout(r, 1_000)); // traffic after the last outage

  const sent: Sent[] = await load.stop();
  await Promise.all(phaseSent.map((p) => p.catch(() => undefined)));
  const count = (o: Sent['outcome']) => sent.filter((s) => s.outcome === o).length;
  t.diagnostic(`traffic: ${sent.length} requests (${count('answered')} answered, ${count('error')} errors, ${count('dropped')} dropped by a kill), ${kills.length} kills`);
  for (const p of world.providers) t.diagnostic(`${p.name} (${p.url}): ${JSON.stringify(p.stats().pool.map((x) => [x.amount, x.proofs]))} in its pool, ${JSON.stringify(p.stats().byStatus)} answers`);
  if (FULL) assert.ok(kills.length >= 10, `${kills.length} kills`);
  for (const p of PHASES.filter((x) => !ONLY || ONLY.includes(x.name))) assert.ok(kills.filter((k) => k.phase === p.name).length >= KILLS_PER_PHASE, `killed at least ${KILLS_PER_PHASE} times ${p.name}`);
  assert.ok(count('answered') > 0, 'requests were served between the kills');

  // Settled: no request left pending; every payment final, or open only as an explicit record
  // (redeemed, refund awaited with evidence) - recovery and the change queue finish their work.
  await until(async () => {
    const v = await control<{ open: number }>(dir, 'requests.verify');
    const r = await control<{ requests: { status: string }[] }>(dir, 'audit.requests', {});
    const open = openPayments(dir);
    const sessions = peek<{ state: string; provider_url: string }>(dir, 'SELECT state, provider_url FROM wallet_sessions');
    return r.requests.every((q) => q.status !== 'pending') && v.open === open.length && open.every(explicitlyOpen)
      && sessions.every((s) => s.state !== 'refunding') && sessions.some((s) => s.provider_url === gamma.url && s.state === 'lost');
  }, 'every request and payment settled or explicitly recorded, every refund token in, the balance at gamma written off', 60_000, 250);

  const verify = await satroute(env, 'audit', 'verify', '--json');
  assert.equal(verify.code, 0, `satroute audit verify: ${verify.stdout}${verify.stderr}`);
  assert.equal(JSON.parse(verify.stdout).ok, true);

  await checkBooks(t, { dir, world, quotes, sent, vanished });

  daemon!.child.kill('SIGTERM');
  assert.equal(await daemon!.exited, 0, 'a clean stop after all that');
});
