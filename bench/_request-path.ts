// A funded request path in this process, as the daemon wires it (wallet, market probed once,
// router, lifecycle), for the benches that drive RequestLifecycle directly (cost, sessions).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WorldChild } from './_world-child.ts';
import { ClientKeys, type ClientKey } from '../daemon/api/auth.ts';
import { Market } from '../daemon/market.ts';
import { Budgets } from '../daemon/requests/budgets.ts';
import { RequestLedger } from '../daemon/requests/ledger.ts';
import { RequestLifecycle, type LifecycleDeps } from '../daemon/requests/lifecycle.ts';
import { MintFees } from '../daemon/requests/mint-fees.ts';
import { SessionManager } from '../daemon/requests/sessions.ts';
import { openRouting, type Routing } from '../daemon/route/index.ts';
import { openWallet, type OpenedWallet } from '../wallet/open.ts';

export interface BenchPath {
  opened: OpenedWallet;
  market: Market;
  /** satroute's router (absent when the bench brought its own). */
  routing?: Routing;
  ledger: RequestLedger;
  lifecycle: RequestLifecycle;
  sessions?: SessionManager;
  client: ClientKey;
  dir: string;
}

export interface BenchPathOptions {
  /** The client key's name (and the temp directory's). */
  name: string;
  fundSat: number;
  /** Another router than satroute's (a baseline), given the probed market. */
  router?: (market: Market) => LifecycleDeps['router'];
  /** Session mode on. */
  sessions?: boolean;
}

/** Open, probe, wire and fund a request path on `world`'s first mint. */
export async function openBenchPath(world: WorldChild, o: BenchPathOptions): Promise<BenchPath> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `satroute-bench-${o.name}-`));
  const mint = world.info.mints[0];
  const opened = openWallet({ dataDir: dir, mints: [mint], synchronous: 'NORMAL' });
  const { wallet, db } = opened;
  const market = new Market({ db, config: { relays: [], providers: world.info.providers.map((p) => p.url) }, autoSchedule: false });
  await market.start();
  await Promise.all(market.providers().map((p) => market.probe(p.id)));
  const fees = new MintFees(wallet.mints);
  await fees.refresh([wallet.mints.assertTrusted(mint)]);
  let routing: Routing | undefined;
  let router: LifecycleDeps['router'];
  if (o.router) router = o.router(market);
  else {
    routing = openRouting({ db, market, config: {} });
    await routing.start();
    router = routing.router;
  }
  const sessions = o.sessions ? new SessionManager({ db, payments: wallet.payments }) : undefined;
  const ledger = new RequestLedger(db);
  const lifecycle = new RequestLifecycle({
    db, router, ledger, budgets: new Budgets(db), payments: wallet.payments, feePpk: (m) => fees.feePpk(m), sessions,
    balances: () => new Map(wallet.store.unspentTotals().filter((b) => b.unit === 'sat').map((b) => [b.mint, b.unspent])),
  });
  await wallet.start();
  const q = await wallet.createFundingQuote(o.fundSat, { mint });
  await world.pay(q.bolt11);
  await wallet.waitForFunding(q.quoteId, { pollMs: 20, timeoutMs: 30_000 });
  const client = new ClientKeys(db).create({ name: o.name }).client;
  return { opened, market, routing, ledger, lifecycle, sessions, client, dir };
}
