// `satroute demo [--serve]`: the whole thing in a local market. Starts test/world's default
// scenario (five providers: honest, overcharging, flaky, announced-but-dead, expensive; two
// mints), a daemon on a temporary data directory, funds its wallet over (simulated) Lightning
// through NWC with the CLI a user would type, sends requests, shows failover and a breaker, the
// audit and `audit verify`, and ends with one JSON line - the money, accounted for:
//   unaccounted_sats = funded - spent - balance - mint fees - losses (with evidence)
// funded is what the NWC wallet paid over Lightning, spent what the request ledger says went to
// providers (kept by them, or the input fee their redemption of our token cost), balance the
// proofs the wallet holds (and any session balance at a provider), mint fees those of the
// wallet's own swaps: separate books, so a sat gone missing shows. Streams paid from a session
// balance count what each attempt's balance lost (rounded up per session, as the wallet books
// it); a session charge no request explains (flagged unreported_charge) is counted as a loss.
// Nothing is left behind: every server is closed and the data directory removed (unless --keep).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Daemon } from '../daemon.ts';
import type { World } from '../../test/world/index.ts';
import { DemoStepError, hideKey, hideNwcSecret, runSatroute, Screen, type CliRun } from './demo-screen.ts';
import { providerNames, runTraffic, until } from './demo-traffic.ts';
import { sat } from './wallet.ts';

export interface DemoOptions {
  serve: boolean;
  keep: boolean;
  /** Progress on stderr: stdout carries only the JSON line. */
  json: boolean;
}

export interface DemoSummary {
  requests: number;
  succeeded: number;
  funded_sats: number;
  spent_sats: number;
  balance_sats: number;
  unaccounted_sats: number;
}

const FUNDING = [
  { mint: 'mint-a', sats: 20_000 },
  { mint: 'mint-b', sats: 10_000 },
];

/** Run the demo; resolves with the exit code (0 only if everything held). */
export async function runDemo(o: DemoOptions): Promise<number> {
  const screen = new Screen(o.json || o.serve ? process.stderr : process.stdout);
  // stdout carries the JSON line; anything the world's parts print goes to stderr.
  console.log = console.error;
  console.info = console.error;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-demo-'));
  fs.chmodSync(dataDir, 0o700);
  let world: World | undefined;
  let daemon: Daemon | undefined;
  let interrupted: NodeJS.Signals | null = null;
  let wake: () => void = () => {};
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(130); // a second Ctrl-C: stop now, cleanup or not
    interrupted = signal;
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const problems: string[] = [];
  let code = 1;
  try {
    const setup = await startAll(screen, dataDir, o);
    world = setup.world;
    daemon = setup.daemon;
    const checkSignal = () => {
      if (interrupted) throw new DemoStepError(`stopped by ${interrupted}`);
    };
    checkSignal();
    const fundedBefore = nwcPaidSat(world);
    // The key is made meanwhile (its own process), shown after the funding.
    const keyMade = runSatroute(dataDir, keyArgs(o.serve));
    await fund(screen, dataDir, world, daemon).finally(() => keyMade.catch(() => undefined));
    checkSignal();
    const key = showKey(screen, await keyMade, o.serve);
    checkSignal();
    const { httpBase, wsUrl } = urls(daemon);
    if (o.serve) {
      const line = { http: httpBase, ws: wsUrl, key, data_dir: dataDir, relay: world.relay.url, mints: world.mints.map((m) => m.url) };
      process.stdout.write(JSON.stringify(line) + '\n');
      screen.line(`\nServing. Try: SATROUTE_DATA_DIR=${dataDir} satroute audit   (Ctrl-C or SIGTERM stops it${o.keep ? '' : ' and removes the data directory'})`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (interrupted) resolve();
      });
      screen.line(`\n${interrupted}: stopping`);
      code = 0;
      return code;
    }
    const traffic = await runTraffic({ daemon, screen, httpBase, wsUrl, key, provider: (name) => world!.provider(name) });
    problems.push(...traffic.problems);
    checkSignal();
    await settle(daemon);
    const audited = await auditAtTheEnd(screen, dataDir);
    if (!audited) problems.push('satroute audit verify did not pass');
    const summary = await account(daemon, nwcPaidSat(world) - fundedBefore, traffic);
    if (summary.unaccounted_sats !== 0) problems.push(`${summary.unaccounted_sats} sat unaccounted for`);
    if (summary.succeeded !== summary.requests) problems.push(`${summary.requests - summary.succeeded} request(s) failed`);
    screen.section('Result');
    screen.line(`  ${summary.succeeded} of ${summary.requests} requests answered, ${traffic.failovers} after failing over; ` +
      `funded ${sat(summary.funded_sats)}, spent ${sat(summary.spent_sats)}, balance ${sat(summary.balance_sats)}, unaccounted ${sat(summary.unaccounted_sats)}`);
    for (const p of problems) screen.line(`  PROBLEM: ${p}`);
    code = problems.length === 0 ? 0 : 1;
    // The last line on stdout, whatever happens after.
    process.stdout.write(JSON.stringify(summary) + '\n');
    return code;
  } catch (err) {
    // --serve is meant to be stopped by a signal, even while it is still setting up.
    if (interrupted && o.serve) return 0;
    process.stderr.write(`satroute demo: ${(err as Error).message}\n`);
    return interrupted ? 130 : 1;
  } finally {
    // Still listening for signals meanwhile: a second one exits at once (onSignal).
    await daemon?.stop().catch((err: Error) => process.stderr.write(`satroute demo: stopping the daemon: ${err.message}\n`));
    await world?.stop().catch((err: Error) => process.stderr.write(`satroute demo: stopping the world: ${err.message}\n`));
    if (o.keep) screen.line(`Kept the data directory: ${dataDir}`);
    else fs.rmSync(dataDir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function startAll(screen: Screen, dataDir: string, o: DemoOptions): Promise<{ world: World; daemon: Daemon }> {
  const [{ startWorld, defaultScenario }, { loadConfig }, { startDaemon }, { createLogger }] = await Promise.all([
    import('../../test/world/index.ts'), import('../config.ts'), import('../daemon.ts'), import('../../protocol/logger.ts'),
  ]);
  screen.line('satroute demo: a local Routstr market, the satroute daemon, real ecash payments.');
  screen.section('1. A local market (test/world, default scenario)');
  const world = await startWorld(defaultScenario);
  let daemon: Daemon | undefined;
  try {
    screen.line(`  Nostr relay  ${world.relay.url}`);
    for (const [i, m] of defaultScenario.mints.entries()) screen.line(`  mint ${m.name.padEnd(7)} ${world.mints[i].url}${m.inputFeePpk ? ` (input fee ${m.inputFeePpk} ppk)` : ''}`);
    for (const [i, p] of defaultScenario.providers.entries()) screen.line(`  provider ${p.name.padEnd(8)} ${world.providers[i].url}  ${p.about ?? ''}`);

    screen.section('2. The daemon, on a temporary data directory');
    fs.writeFileSync(path.join(dataDir, 'satroute.json'), JSON.stringify({
      listen: '127.0.0.1:0', relays: [world.relay.url], mints: world.mints.map((m) => m.url),
      // Ctrl-C in the middle of a request: settle it within 2 s rather than the default 20.
      requests: { shutdownGraceMs: 2_000 },
    }, null, 2) + '\n', { mode: 0o600 });
    const config = loadConfig({ SATROUTE_DATA_DIR: dataDir });
    const level = process.env.SATROUTE_LOG_LEVEL === 'debug' || process.env.SATROUTE_LOG_LEVEL === 'info' || process.env.SATROUTE_LOG_LEVEL === 'warn' ? process.env.SATROUTE_LOG_LEVEL : 'error';
    const started = await startDaemon(config, { logger: createLogger({ level, name: 'satroute', write: (line) => process.stderr.write(line + '\n') }) });
    daemon = started;
    const { httpBase, wsUrl } = urls(started);
    screen.line(`  data directory ${dataDir}${o.keep ? ' (kept: --keep)' : ' (removed at the end; --keep keeps it)'}`);
    screen.line(`  HTTP ${httpBase}/v1   WebSocket ${wsUrl}`);
    // Discovery: every announced provider seen and probed once (reachable, or failed).
    const announced = defaultScenario.providers.filter((p) => p.announce !== false).length;
    await until(() => {
      const ps = started.market.providers();
      return ps.length >= announced && ps.every((p) => p.status === 'reachable' || p.failures > 0);
    }, 20_000, 100);
    const names = providerNames(started);
    screen.line('  providers found over Nostr and probed:');
    for (const p of started.market.providers()) {
      const cheapest = p.cheapest ? `, cheapest ${p.cheapest.model}` : '';
      screen.line(`    ${names(p.id).padEnd(8)} ${p.status.padEnd(11)} ${p.models} models${cheapest}${p.last_error ? `  (${p.last_error.slice(0, 60)})` : ''}`);
    }
    return { world, daemon: started };
  } catch (err) {
    await daemon?.stop().catch(() => undefined);
    await world.stop();
    throw err;
  }
}

function urls(daemon: Daemon): { httpBase: string; wsUrl: string } {
  const listen = daemon.info.listen.replace(/^https?:\/\//, '');
  return { httpBase: `http://${listen}`, wsUrl: `ws://${listen}/v1/ws` };
}

/** What the world's NWC wallet has paid out over Lightning, in sats. */
function nwcPaidSat(world: World): number {
  return Math.floor(world.nwc.payments.reduce((s, p) => s + p.amountMsat, 0) / 1000);
}

/** `satroute wallet nwc` and `satroute wallet fund` as a user types them (the daemon pays through NWC). */
async function fund(screen: Screen, dataDir: string, world: World, daemon: Daemon): Promise<void> {
  screen.section('3. Funding the wallet over Lightning, paid through NWC');
  await shown(screen, dataDir, ['wallet', 'nwc', world.nwc.uri], ['wallet', 'nwc', hideNwcSecret(world.nwc.uri)]);
  // Both mints at once (two processes); the first shown with its invoice and QR code, as a person
  // sees it, the second as a script sees it.
  const runs = FUNDING.map((f, i) => ['wallet', 'fund', String(f.sats), '--mint', world.mint(f.mint).url, ...(i > 0 ? ['--json'] : [])])
    .map((args) => ({ args, running: runSatroute(dataDir, args) }));
  try {
    for (const r of runs) await shown(screen, dataDir, r.args, r.args, r.running);
  } finally {
    await Promise.all(runs.map((r) => r.running));
  }
  const b = daemon.wallet.balance();
  screen.line(`\n  the wallet now holds ${sat(b.totalSat)}: ${b.mints.filter((m) => m.unit === 'sat').map((m) => `${sat(m.unspent)} at ${m.mint}`).join(', ')}`);
}

const keyArgs = (admin: boolean) => ['keys', 'create', '--name', 'demo', ...(admin ? ['--admin'] : []), '--json'];

/** `satroute keys create`'s answer; the key is shown by its prefix only (--serve prints it in its JSON line). */
function showKey(screen: Screen, r: CliRun, admin: boolean): string {
  screen.line(`\n  $ satroute ${keyArgs(admin).join(' ')}`);
  if (r.code !== 0) throw new DemoStepError(`satroute keys create failed: ${r.stderr.trim()}`);
  const k = JSON.parse(r.stdout) as { name: string; key: string };
  screen.line(`    created key "${k.name}" ${hideKey(k.key)} (${admin ? 'admin scope' : 'no budget limits'}; shown here by its prefix only)`);
  return k.key;
}

/** Run a command, show it and its output; a failure stops the demo. */
async function shown(screen: Screen, dataDir: string, args: string[], display = args, running = runSatroute(dataDir, args)): Promise<CliRun> {
  screen.line(`\n  $ satroute ${display.join(' ')}`);
  const r = await running;
  screen.block(r.stdout);
  if (r.code !== 0) throw new DemoStepError(`satroute ${display.slice(0, 2).join(' ')} failed: ${r.stderr.trim()}`);
  return r;
}

/** Wait until every payment is settled and every change token swapped in (the wallet holds only proofs). */
async function settle(daemon: Daemon): Promise<void> {
  const open = () => {
    const pending = daemon.db.prepare(`SELECT COUNT(*) FROM payments WHERE state IN ('pending', 'refund_wait')`).pluck().get() as number;
    return pending + daemon.payments.changeQueue.openCount() + daemon.wallet.balance().pendingSat;
  };
  await until(() => open() === 0, 20_000, 100);
}

async function auditAtTheEnd(screen: Screen, dataDir: string): Promise<boolean> {
  screen.section('6. The audit');
  // Both at once (separate processes), shown one after the other.
  const verifying = runSatroute(dataDir, ['audit', 'verify']);
  await shown(screen, dataDir, ['audit']).finally(() => verifying.catch(() => undefined));
  screen.line(`\n  $ satroute audit verify`);
  const r = await verifying;
  screen.block(r.stdout);
  if (r.code !== 0) screen.block(r.stderr);
  return r.code === 0;
}

/** The final line's figures, from three separate books (see the header). */
async function account(daemon: Daemon, fundedSat: number, traffic: { requests: number; succeeded: number }): Promise<DemoSummary> {
  const { queryRequests, sessionChargesSat } = await import('../requests/audit.ts');
  const rows = queryRequests(daemon.db);
  // What went to providers: sent - change (refunds included) - what was lost (booked apart below).
  // It includes the mint's input fee a token carries for its redemption (the request's fee_sats).
  const tokensSat = rows.reduce((s, r) => s + r.sentSat - r.changeSat - r.lostSat, 0);
  // Streams paid from a session balance: what each attempt's balance lost (msat, exact); a
  // session's charges leave the wallet's books in whole sats, rounded up over the session.
  const sessionsSat = sessionChargesSat(daemon.db);
  const spentSat = tokensSat + sessionsSat;
  const report = await daemon.wallet.verify({ checkMints: true });
  let balanceSat = 0;
  let feesSat = 0;
  let lostSat = 0;
  let sessionChargedSat = 0;
  for (const t of report.totals) {
    if (t.unit !== 'sat') continue;
    balanceSat += t.unspent + t.pending + t.heldInSessions;
    feesSat += t.mintFees + t.withdrawalFees;
    lostSat += t.losses + t.sessionLost;
    sessionChargedSat += t.sessionCharged;
  }
  // A session balance that shrank beyond what its requests reported is charged in the wallet and
  // flagged (unreported_charge), not attributed to a request: accounted explicitly, and shown.
  lostSat += Math.max(0, sessionChargedSat - sessionsSat);
  return {
    requests: traffic.requests,
    succeeded: traffic.succeeded,
    funded_sats: fundedSat,
    spent_sats: spentSat,
    balance_sats: balanceSat,
    unaccounted_sats: fundedSat - spentSat - balanceSat - feesSat - lostSat,
  };
}
