// A simulated Routstr provider (routstr-core v0.4.5 behaviour, see /work/shared/ROUTSTR.md):
// announces itself on Nostr (kind 38421), lists models with sats prices, takes X-Cashu
// tokens, redeems them at a real mint, serves deterministic fake output, charges per token
// and returns change; every fault a real provider shows is a knob.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { getTokenMetadata } from '@cashu/cashu-ts';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { npubEncode } from 'nostr-tools/nip19';
import { announcementTemplate, publishAnnouncement, type AnnounceOverrides, type PublishResult } from './provider/announce.ts';
import { UpstreamFaults } from './provider/faults.ts';
import { detailBody, sendJson, sleep } from './provider/http.ts';
import { handlePaid, type PaidContext } from './provider/paid.ts';
import { modelListing } from './provider/pricing.ts';
import { createProviderState } from './provider/balance-book.ts';
import { handleBalanceApi, isBalanceApiPath } from './provider/balance-api.ts';
import type { BalanceContext } from './provider/balance-auth.ts';
import { BALANCE_PAID_PATHS, handleBalancePaid, usesBalanceMode } from './provider/balance-paid.ts';
import { RefundBook } from './provider/refunds.ts';
import { defaultKnobs, type ModelSpec, type ProviderKnobs, type ProviderOptions, type ProviderStats } from './provider/types.ts';
import { PAID_PATHS } from './provider/upstream.ts';
import { behaviourOf } from './provider/version.ts';

export type { BadUsage, ModelSpec, PriceChange, ProviderKnobs, ProviderOptions, ProviderStats, RateLimit, UpstreamError, WrongShape } from './provider/types.ts';
export type { AnnounceOverrides, PublishResult } from './provider/announce.ts';
export { chargeMsat, changeFor, requiredMsat, satsPricing, upstreamUsd, usdChargeMsat, PROVIDER_FEE } from './provider/pricing.ts';
export { promptTokensOf, embeddingTokensOf, chatReply } from './provider/content.ts';
export { createProviderState, type ProviderState } from './provider/balance-book.ts';
export { behaviourOf, versionAtLeast, type VersionBehaviour } from './provider/version.ts';

export interface TestProvider {
  readonly name: string;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Nostr pubkey (hex). */
  readonly pubkey: string;
  /** The `d` tag. */
  readonly providerId: string;
  /** Knobs; assign fields while running (`provider.knobs.dead = true` closes the port). */
  readonly knobs: ProviderKnobs;
  /** Sign and publish a kind-38421 event to the relays (overrides for tests); the `impersonate` knob is read here. */
  publish(over?: AnnounceOverrides): Promise<PublishResult>;
  /** Give the node ecash (received into its pool, at the token's mint): what a hostile surplus or another mint's change is paid from. Resolves to the amount. */
  fund(token: string): Promise<number>;
  /** Change a model's prices or limits at runtime (a price change mid-day). */
  setPrice(modelId: string, p: Partial<Omit<ModelSpec, 'id'>>): void;
  /** Add or replace a model. */
  setModel(m: ModelSpec): void;
  /** Close or reopen the HTTP port; resolves when done (the `dead` knob does the same, unawaited). */
  setDead(dead: boolean): Promise<void>;
  /** Run the node's refund sweep now (it also runs lazily when a refund is asked for); resolves to how many were swept. */
  sweepRefunds(): Promise<number>;
  stats(): ProviderStats;
  stop(): Promise<void>;
}

/** Start a provider on 127.0.0.1 and announce it to `opts.relays` (unless `noAnnounce`). */
export async function startProvider(opts: ProviderOptions): Promise<TestProvider> {
  const clock = opts.clock ?? Date.now;
  const random = opts.random ?? Math.random;
  const usdPerSat = opts.usdPerSat ?? 0.001;
  const version = opts.version ?? '0.4.5';
  const secretKey = opts.secretKey ?? generateSecretKey();
  const pubkey = getPublicKey(secretKey);
  const providerId = opts.providerId ?? pubkey.slice(0, 12);
  const behaviour = behaviourOf(version);
  const models = new Map<string, ModelSpec>(opts.models.map((m) => [m.id, { ...m }]));
  // The node's database and wallet: kept in `opts.state` across a restart, which (like
  // routstr's reset_reserved_balance_on_startup) releases every reservation.
  const state = opts.state ?? createProviderState(clock);
  state.balances.restarted();
  const purse = state.purse;
  const sockets = new Set<Socket>();
  const hung = new Set<ServerResponse>();
  const stats = { requests: 0, succeeded: 0, redeemed: 0, earnedMsat: 0, refundedMsat: 0, byStatus: {} as Record<number, number> };
  let stopped = false;

  const knobState: ProviderKnobs = { ...defaultKnobs(opts.mints), ...opts.knobs };
  let deadTransition: Promise<void> = Promise.resolve();
  const knobs = new Proxy(knobState, {
    set(target, prop, value) {
      if (prop === 'dead' && value !== target.dead) deadTransition = deadTransition.then(() => applyDead(Boolean(value)));
      // Vanishing is for good: it cannot be undone.
      if (prop === 'vanished' && !value && target.vanished) return true;
      if (prop === 'vanished' && value && !target.vanished) {
        state.balances.wipe();
        deadTransition = deadTransition.then(() => applyDead(true));
      }
      (target as unknown as Record<string | symbol, unknown>)[prop] = value;
      return true;
    },
  });

  const findModel = (id: string): ModelSpec | undefined => {
    const direct = models.get(id);
    if (direct) return direct;
    for (const m of models.values()) if (m.aliasIds?.includes(id)) return m;
    return undefined;
  };

  const refunds = new RefundBook({
    clock,
    behaviour: () => behaviour,
    sweepAgeMs: () => knobState.refundSweepAgeMs,
    sweep: (token, mint, unit) => purse.respend(token, mint, unit),
    onSwept: (amount, unit) => {
      const msat = unit === 'msat' ? amount : amount * 1000;
      stats.earnedMsat += msat;
      stats.refundedMsat -= msat;
    },
  });

  const paidCtx: PaidContext = {
    name: opts.name,
    knobs: knobState,
    behaviour: () => behaviour,
    findModel,
    reprice: (modelId, factor) => {
      const m = models.get(modelId)!;
      const scaled = { promptSatsPerToken: m.promptSatsPerToken * factor, completionSatsPerToken: m.completionSatsPerToken * factor };
      models.set(modelId, { ...m, ...scaled, ...(m.maxCostSats !== undefined ? { maxCostSats: m.maxCostSats * factor } : {}) });
    },
    purse,
    refunds,
    faults: new UpstreamFaults(knobState, clock, random),
    clock,
    usdPerSat,
    hang: (res) => {
      hung.add(res);
      res.on('close', () => hung.delete(res));
    },
    book: (keptMsat, refundedMsat) => {
      stats.earnedMsat += keptMsat;
      stats.refundedMsat += refundedMsat;
    },
    onRedeemed: () => {
      stats.redeemed += 1;
    },
    report: (err) => opts.onError?.(err),
    delay: opts.delay ?? sleep,
  };

  const balanceCtx: BalanceContext = {
    name: opts.name,
    version,
    knobs: knobState,
    mints: opts.mints,
    balances: state.balances,
    purse,
    clock,
    delay: opts.delay ?? sleep,
    random,
    usdPerSat,
    findModel,
    faults: paidCtx.faults,
    hang: paidCtx.hang,
    onRedeemed: paidCtx.onRedeemed,
    book: (chargedMsat, refundedMsat) => paidCtx.book(chargedMsat, refundedMsat),
    report: paidCtx.report,
    refundCache: new Map(),
  };

  let url = '';
  const info = () => ({
    name: opts.name,
    description: opts.about ?? `Simulated Routstr provider ${opts.name}`,
    version,
    npub: npubEncode(pubkey),
    mints: opts.mints,
    http_url: url,
    onion_url: '',
    child_key_cost_msats: 0,
  });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const base = { 'x-routstr-request-id': requestId };
    await sleep(knobState.latencyMs);
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    if (method === 'GET' && path === '/v1/info') return sendJson(res, 200, info(), base);
    if (method === 'GET' && path === '/v1/models') {
      const created = Math.floor(clock() / 1000);
      return sendJson(res, 200, { data: [...models.values()].map((m) => modelListing(m, usdPerSat, created)) }, base);
    }
    if (method === 'POST' && (path === '/v1/balance/refund' || path === '/v1/wallet/refund')) {
      const token = req.headers['x-cashu'];
      if (behaviour.xcashuRefundRoute && typeof token === 'string' && token) {
        await refunds.answer(res, token, requestId, base);
        return;
      }
      if (!behaviour.xcashuRefundRoute && req.headers.authorization === undefined) {
        // Before v0.4.3 the route takes only `Authorization: Bearer`: FastAPI's own 422 for the missing header.
        sendJson(res, 422, { detail: [{ type: 'missing', loc: ['header', 'authorization'], msg: 'Field required', input: null }] }, base);
        return;
      }
      // Otherwise the API-key branch (balance-api.ts), which answers 401 without a valid key.
    }
    if (isBalanceApiPath(path)) {
      await handleBalanceApi(balanceCtx, req, res, path, requestId, base);
      return;
    }
    const balanceEndpoint = method === 'POST' ? BALANCE_PAID_PATHS.get(path) : undefined;
    if (balanceEndpoint && usesBalanceMode(req)) {
      stats.requests += 1;
      const status = await handleBalancePaid(balanceCtx, balanceEndpoint, req, res, requestId, base);
      if (status) stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
      if (status === 200) stats.succeeded += 1;
      return;
    }
    const endpoint = method === 'POST' ? PAID_PATHS[path] : undefined;
    if (endpoint) {
      stats.requests += 1;
      const status = await handlePaid(paidCtx, endpoint, req, res, requestId, base);
      if (status) stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
      if (status === 200) stats.succeeded += 1;
      return;
    }
    sendJson(res, 404, detailBody('Not Found', requestId), base);
  }

  const server: Server = createServer((req, res) => {
    route(req, res).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String((err as Error)?.message ?? err), type: 'internal_error', code: 500 } });
      else res.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  let port = opts.port ?? 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });
  async function applyDead(dead: boolean): Promise<void> {
    if (stopped) return;
    if (dead) await close();
    else if (knobState.vanished) return;
    else if (!server.listening) await listen();
  }

  await listen();
  url = `http://127.0.0.1:${port}`;
  if (knobState.vanished) state.balances.wipe();
  if (knobState.dead || knobState.vanished) await close();

  const announced = () => ({
    providerId,
    // A hostile node (hostile.ts) announces another provider's URL under its own key.
    urls: knobState.impersonate ? [knobState.impersonate] : [url, ...(opts.extraUrls ?? [])],
    mints: opts.mints,
    version,
    name: opts.name,
    about: opts.about ?? 'A Routstr Node',
    createdAtSec: Math.floor(clock() / 1000),
  });
  const publish = (over?: AnnounceOverrides) => publishAnnouncement(announcementTemplate(announced(), over), secretKey, opts.relays);
  if (!opts.noAnnounce && opts.relays.length) await publish();

  return {
    name: opts.name,
    url,
    pubkey,
    providerId,
    knobs,
    publish,
    async fund(token) {
      const meta = getTokenMetadata(token);
      return purse.respend(token, meta.mint, meta.unit ?? 'sat');
    },
    setPrice(modelId, p) {
      const m = models.get(modelId);
      if (!m) throw new Error(`unknown model ${modelId}`);
      models.set(modelId, { ...m, ...p, id: modelId });
    },
    setModel(m) {
      models.set(m.id, { ...m });
    },
    async setDead(dead) {
      knobs.dead = dead;
      await deadTransition;
    },
    sweepRefunds: () => refunds.sweep(),
    stats: () => ({
      requests: stats.requests,
      succeeded: stats.succeeded,
      redeemed: stats.redeemed,
      earnedMsat: stats.earnedMsat,
      earnedSat: Math.floor(stats.earnedMsat / 1000),
      refundedMsat: stats.refundedMsat,
      byStatus: { ...stats.byStatus },
      pool: purse.balances(),
    }),
    async stop() {
      await deadTransition;
      stopped = true;
      for (const r of hung) r.destroy();
      await close();
    },
  };
}
