// A scenario describes a whole local market in JSON: mints, providers with their models,
// prices, accepted mints and fault knobs, and the NWC wallet's balance. startWorld builds it
// from real parts (relay, Lightning, mints, NWC service, providers) and tears it down again.
import { z } from 'zod';
import { getEncodedToken, Wallet } from '@cashu/cashu-ts';
import { LightningNetwork, type Clock } from './lightning.ts';
import { startMint, type TestMint } from './mint.ts';
import { startNwcService, type TestNwcService } from './nwc.ts';
import { startProvider, type TestProvider } from './provider.ts';
import type { ModelSpec, ProviderKnobs } from './provider/types.ts';
import { startRelay, type TestRelay } from './relay.ts';
import { rng } from '../rng.ts';

/** A scenario that does not describe a market that can be built; the message is one line. */
export class ScenarioError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScenarioError';
  }
}

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" or "-"');
const count = z.number().int().nonnegative();
/** A mint of this world by index or name, or the URL of a mint outside it. */
const mintRef = z.union([count, z.string().min(1)]);

const mintRateLimit = z.strictObject({ retryAfterSec: count.nullable(), maxRequests: count.optional(), windowMs: z.number().int().positive().optional() });

const mintSchema = z.strictObject({
  name,
  units: z.array(z.enum(['sat', 'msat'])).min(1).optional(),
  inputFeePpk: count.optional(),
  /** NUT-02 keyset id version; default "00" like most mints in the wild. */
  keysetIdVersion: z.enum(['00', '01']).optional(),
  knobs: z
    .strictObject({ latencyMs: count, failNext: count, loseResponseNext: count, meltDelayMs: count, onlyRoute: z.string().min(1).nullable(), rateLimit: mintRateLimit.nullable() })
    .partial()
    .optional(),
  /** Start with the port closed (connection refused), as a mint that is down. */
  down: z.boolean().optional(),
});

const modelSchema = z.strictObject({
  id: z.string().min(1),
  name: z.string().optional(),
  aliasIds: z.array(z.string().min(1)).optional(),
  promptSatsPerToken: z.number().nonnegative(),
  completionSatsPerToken: z.number().nonnegative(),
  requestSats: z.number().nonnegative().optional(),
  maxCostSats: z.number().positive().optional(),
  contextLength: z.number().int().positive().optional(),
  maxCompletionTokens: z.number().int().positive().optional(),
  kind: z.enum(['chat', 'embedding']).optional(),
});

const knobsSchema = z.strictObject({
  latencyMs: count,
  ttfbMs: count,
  failureRate: z.number().min(0).max(1),
  failureStatus: z.number().int().min(400).max(599),
  timeout: z.boolean(),
  rateLimit: z.strictObject({ retryAfterSec: count.optional(), maxRequests: count.optional(), windowMs: z.number().int().positive().optional() }).nullable(),
  overchargeFactor: z.number().positive(),
  overchargeReports: z.enum(['inflated', 'honest']),
  noUsage: z.boolean(),
  invalidChange: z.enum(['garbage', 'spent']).nullable(),
  midStreamDrop: count.nullable(),
  dead: z.boolean(),
  use413: z.boolean(),
  legacyCostField: z.enum(['top-level', 'metadata']).nullable(),
  acceptedMints: z.array(mintRef),
  internalError500: z.boolean(),
  completionTokens: count.nullable(),

  foreignMint: z.enum(['swap', 'refuse']),
  upstreamError: z.strictObject({ status: z.number().int().min(300).max(599), models: z.array(z.string().min(1)).optional(), forMs: count.optional() }).nullable(),
  usdCost: z.boolean(),
  usdDrift: z.number().min(-0.1).max(0.1),
  priceChange: z.strictObject({ factor: z.number().positive(), afterRequests: z.number().int().positive().optional() }).nullable(),
  refundRecordDelayMs: count,
  refundSweepAgeMs: count,
  staleContentLength: z.enum(['smaller', 'larger']).nullable(),

  // The balance (API-key) mode.
  chunkDelayMs: count,
  vanished: z.boolean(),
  balanceRefundSweepMs: count,
  staleReservationMs: count,
  refundDebitDelayMs: count,

  // Hostile providers (provider/hostile.ts).
  usageReportFactor: z.number().min(0).max(1),
  changeSurplus: count,
  /** A mint of this world (name or index) or a URL; the node pays change from its pool there (see poolSat). */
  changeMint: mintRef.nullable(),
  endlessMs: count.nullable(),
  hugeBodyBytes: count.nullable(),
  wrongShape: z.enum(['no-choices', 'choices-object', 'usage-array', 'array']).nullable(),
  badUsage: z.enum(['negative', 'huge', 'nan', 'infinity', 'nan-string', 'string']).nullable(),
  /** Another provider of this world (by name), or a URL, whose URL this one announces as its own. */
  impersonate: z.string().min(1).nullable(),
}).partial();

const providerSchema = z.strictObject({
  name,
  /** Mints announced and accepted; default every mint of the world. */
  mints: z.array(mintRef).optional(),
  /**
   * How the provider spells its mints' URLs (a node compares them as exact strings): as the mint
   * serves them, with a trailing slash, upper-case scheme and host, or the port written out
   * (spellMint).
   */
  mintSpelling: z.enum(['as-is', 'trailing-slash', 'upper-case', 'explicit-port']).optional(),
  models: z.array(modelSchema).min(1),
  knobs: knobsSchema.optional(),
  about: z.string().optional(),
  providerId: z.string().min(1).optional(),
  version: z.string().min(1).optional(),
  usdPerSat: z.number().positive().optional(),
  /** false: serve HTTP but never publish the kind-38421 event. */
  announce: z.boolean().optional(),
  /** Fixed port on 127.0.0.1; default any free port. */
  port: z.number().int().min(1).max(65535).optional(),
  /** More `u` tags to announce besides the HTTP URL (e.g. an onion address). */
  extraUrls: z.array(z.string().min(1)).optional(),
  /** Ecash the node holds from the start, this many sats at each mint it pays from (its mints and changeMint), minted over the world's Lightning. */
  poolSat: count.optional(),
});

// Compile-time guard: the scenario format covers exactly the provider's knobs and model fields.
type Same<A, B> = [Exclude<A, B>, Exclude<B, A>] extends [never, never] ? true : false;
const knobsInSync: Same<keyof z.output<typeof knobsSchema>, keyof ProviderKnobs> = true;
const modelInSync: Same<keyof z.output<typeof modelSchema>, keyof ModelSpec> = true;
void knobsInSync;
void modelInSync;

export const scenarioSchema = z.strictObject({
  $schema: z.string().optional(),
  description: z.string().optional(),
  /** Seeds each provider's random source (failure rate), so runs repeat; absent: Math.random. */
  seed: z.number().int().optional(),
  lightning: z.strictObject({ routingFeeMsat: count.optional() }).optional(),
  mints: z.array(mintSchema).min(1),
  providers: z.array(providerSchema),
  nwcBalanceSat: count,
});

/** A market as written in a scenario file (JSON-serialisable). */
export type Scenario = z.input<typeof scenarioSchema>;
export type ScenarioMint = Scenario['mints'][number];
export type ScenarioProvider = Scenario['providers'][number];
export type ScenarioModel = ScenarioProvider['models'][number];

/** Validate untrusted scenario JSON; throws ScenarioError with a one-line reason. */
export function parseScenario(input: unknown): Scenario {
  const parsed = scenarioSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : 'scenario';
    throw new ScenarioError(`${where}: ${issue.message}`);
  }
  const scenario = parsed.data;
  unique(scenario.mints.map((m) => m.name), 'mints');
  unique(scenario.providers.map((p) => p.name), 'providers');
  scenario.providers.forEach((p, i) => {
    const changeMint = p.knobs?.changeMint;
    for (const ref of [...(p.mints ?? []), ...(p.knobs?.acceptedMints ?? []), ...(changeMint != null ? [changeMint] : [])]) resolveMintRef(scenario, ref, `providers[${i}]`);
    const victim = p.knobs?.impersonate;
    if (victim && !/^https?:\/\//.test(victim)) {
      if (victim === p.name) throw new ScenarioError(`providers[${i}]: a provider cannot impersonate itself`);
      if (!scenario.providers.some((q) => q.name === victim)) throw new ScenarioError(`providers[${i}]: impersonate names no provider "${victim}" (use a provider's name or an http(s) URL)`);
    }
  });
  return scenario;
}

function unique(names: string[], where: string): void {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw new ScenarioError(`${where}: the name "${n}" is used twice`);
    seen.add(n);
  }
}

/** Index of the world mint a reference names, or the external URL it is. */
function resolveMintRef(scenario: Scenario, ref: number | string, where: string): number | string {
  if (typeof ref === 'number') {
    if (ref >= scenario.mints.length) throw new ScenarioError(`${where}: mint index ${ref} is out of range (${scenario.mints.length} mints)`);
    return ref;
  }
  const i = scenario.mints.findIndex((m) => m.name === ref);
  if (i >= 0) return i;
  if (/^https?:\/\//.test(ref)) return ref;
  throw new ScenarioError(`${where}: unknown mint "${ref}" (use a mint's name, its index, or an http(s) URL)`);
}

/** The market most tests and the demo run against. Prices are sats per token. */
export const defaultScenario: Scenario = {
  description:
    'Five providers at different prices with overlapping models; one overcharges, one is flaky, one is announced but dead; two bill the USD cost their upstream reports (so charges drift from the list price), and one spells its mint with a trailing slash.',
  seed: 21,
  mints: [{ name: 'mint-a' }, { name: 'mint-b', inputFeePpk: 100, keysetIdVersion: '01' }],
  nwcBalanceSat: 100_000,
  providers: [
    {
      name: 'alpha',
      about: 'Honest, middle of the market; its upstream reports USD, and BTC/USD has moved 1 % since it listed',
      mints: ['mint-a', 'mint-b'],
      models: [
        { id: 'openai/gpt-4o-mini', aliasIds: ['gpt-4o-mini'], promptSatsPerToken: 0.02, completionSatsPerToken: 0.08, maxCostSats: 800 },
        { id: 'meta-llama/llama-3.1-8b-instruct', promptSatsPerToken: 0.005, completionSatsPerToken: 0.01, maxCostSats: 120 },
        { id: 'openai/text-embedding-3-small', kind: 'embedding', promptSatsPerToken: 0.001, completionSatsPerToken: 0, maxCostSats: 10 },
      ],
      knobs: { usdCost: true, usdDrift: 0.01 },
    },
    {
      name: 'bravo',
      about: 'Lowest list price, charges 1.5x what it lists',
      mints: ['mint-a'],
      models: [
        { id: 'gpt-4o-mini', aliasIds: ['openai/gpt-4o-mini'], promptSatsPerToken: 0.015, completionSatsPerToken: 0.06, maxCostSats: 700 },
        { id: 'anthropic/claude-3.5-haiku', aliasIds: ['claude-3-5-haiku'], promptSatsPerToken: 0.04, completionSatsPerToken: 0.2, maxCostSats: 1800 },
      ],
      knobs: { overchargeFactor: 1.5 },
    },
    {
      name: 'charlie',
      about: 'Cheap but fails a third of its requests',
      mints: ['mint-a', 'mint-b'],
      models: [
        { id: 'openai/gpt-4o-mini', promptSatsPerToken: 0.016, completionSatsPerToken: 0.065, maxCostSats: 700 },
        { id: 'anthropic/claude-3.5-haiku', promptSatsPerToken: 0.035, completionSatsPerToken: 0.18, maxCostSats: 1600 },
      ],
      knobs: { failureRate: 0.33, latencyMs: 20 },
    },
    {
      name: 'delta',
      about: 'Announced on Nostr, cheapest of all, but its HTTP port is closed',
      mints: ['mint-a'],
      models: [
        { id: 'openai/gpt-4o-mini', promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, maxCostSats: 500 },
        { id: 'meta-llama/llama-3.1-8b-instruct', promptSatsPerToken: 0.002, completionSatsPerToken: 0.004, maxCostSats: 60 },
      ],
      knobs: { dead: true },
    },
    {
      name: 'echo',
      about: 'Honest and reliable, expensive, slower; only mint-b, listed with a trailing slash; USD-billed, BTC/USD down 2 %',
      mints: ['mint-b'],
      mintSpelling: 'trailing-slash',
      models: [
        { id: 'openai/gpt-4o-mini', promptSatsPerToken: 0.03, completionSatsPerToken: 0.12, maxCostSats: 1200 },
        { id: 'anthropic/claude-3.5-haiku', promptSatsPerToken: 0.05, completionSatsPerToken: 0.25, maxCostSats: 2200 },
        { id: 'meta-llama/llama-3.1-8b-instruct', promptSatsPerToken: 0.006, completionSatsPerToken: 0.012, maxCostSats: 150 },
        { id: 'openai/text-embedding-3-small', kind: 'embedding', promptSatsPerToken: 0.0015, completionSatsPerToken: 0, maxCostSats: 15 },
      ],
      knobs: { latencyMs: 80, usdCost: true, usdDrift: -0.02 },
    },
  ],
};

export interface WorldInfo {
  relay: string;
  mints: string[];
  providers: { name: string; url: string }[];
  nwc: string;
}

export interface World {
  readonly scenario: Scenario;
  readonly relay: TestRelay;
  readonly lightning: LightningNetwork;
  readonly mints: TestMint[];
  readonly providers: TestProvider[];
  readonly nwc: TestNwcService;
  /** The mint with this scenario name. */
  mint(name: string): TestMint;
  /** The provider with this scenario name. */
  provider(name: string): TestProvider;
  /** The URLs a client needs, as `npm run world` prints them. */
  info(): WorldInfo;
  /** Stop everything, in reverse order of start. */
  stop(): Promise<void>;
}

export interface WorldOptions {
  clock?: Clock;
  /** Random source for every provider; overrides the scenario's seed. */
  random?: () => number;
}

/** Start the market a scenario describes (default: defaultScenario). */
export async function startWorld(scenarioInput: unknown = defaultScenario, opts: WorldOptions = {}): Promise<World> {
  const scenario = parseScenario(scenarioInput);
  const clock = opts.clock ?? Date.now;
  const stack: (() => Promise<void>)[] = [];
  const teardown = async () => {
    while (stack.length) {
      const stop = stack.pop()!;
      await stop().catch(() => undefined);
    }
  };

  try {
    const relay = await startRelay();
    stack.push(() => relay.stop());
    const lightning = new LightningNetwork(clock);
    lightning.knobs.routingFeeMsat = scenario.lightning?.routingFeeMsat ?? 0;

    const mints: TestMint[] = [];
    for (const m of scenario.mints) {
      const mint = await startMint({ lightning, units: m.units, inputFeePpk: m.inputFeePpk, keysetIdVersion: m.keysetIdVersion, clock, name: m.name });
      stack.push(() => mint.stop());
      Object.assign(mint.knobs, m.knobs ?? {});
      mints.push(mint);
    }
    const mintUrl = (ref: number | string, spelling: ScenarioProvider['mintSpelling'] = 'as-is') => {
      const r = resolveMintRef(scenario, ref, 'providers');
      return typeof r === 'number' ? spellMint(mints[r].url, spelling) : r;
    };

    const nwc = await startNwcService({ relayUrl: relay.url, lightning, balanceSat: scenario.nwcBalanceSat, clock, name: 'nwc' });
    stack.push(() => nwc.stop());

    const providers: TestProvider[] = [];
    for (const [i, p] of scenario.providers.entries()) {
      const { acceptedMints, changeMint, impersonate, ...knobs } = p.knobs ?? {};
      const provider = await startProvider({
        name: p.name,
        relays: [relay.url],
        mints: (p.mints ?? scenario.mints.map((_, j) => j)).map((ref) => mintUrl(ref, p.mintSpelling)),
        models: p.models as ModelSpec[],
        knobs: {
          ...knobs,
          ...(acceptedMints ? { acceptedMints: acceptedMints.map((ref) => mintUrl(ref, p.mintSpelling)) } : {}),
          ...(changeMint != null ? { changeMint: mintUrl(changeMint, p.mintSpelling) } : {}),
        } as Partial<ProviderKnobs>,
        about: p.about,
        providerId: p.providerId,
        version: p.version,
        usdPerSat: p.usdPerSat,
        // An impostor announces once its victim's URL is known (below).
        noAnnounce: p.announce === false || !!impersonate,
        port: p.port,
        extraUrls: p.extraUrls,
        clock,
        random: opts.random ?? (scenario.seed === undefined ? undefined : seededRandom(scenario.seed * 1000 + i)),
      });
      stack.push(() => provider.stop());
      providers.push(provider);
    }

    const providerNames = scenario.providers.map((p) => p.name);
    for (const [i, p] of scenario.providers.entries()) {
      const victim = p.knobs?.impersonate;
      if (p.poolSat) {
        const refs = [...(p.mints ?? scenario.mints.map((_, j) => j)), ...(p.knobs?.changeMint != null ? [p.knobs.changeMint] : [])];
        const at = new Set(refs.map((ref) => resolveMintRef(scenario, ref, 'providers')).filter((r): r is number => typeof r === 'number'));
        for (const j of at) await providers[i].fund(await mintToken(mints[j], lightning, p.poolSat));
      }
      if (!victim) continue;
      providers[i].knobs.impersonate = /^https?:\/\//.test(victim) ? victim : providers[providerNames.indexOf(victim)].url;
      if (p.announce !== false) await providers[i].publish();
    }

    for (const [i, m] of scenario.mints.entries()) if (m.down) await mints[i].setDown(true);

    let stopped: Promise<void> | undefined;
    const byName = <T>(list: T[], names: string[], what: string, n: string): T => {
      const i = names.indexOf(n);
      if (i < 0) throw new Error(`no ${what} named "${n}" in this world`);
      return list[i];
    };
    return {
      scenario,
      relay,
      lightning,
      mints,
      providers,
      nwc,
      mint: (n) => byName(mints, scenario.mints.map((m) => m.name), 'mint', n),
      provider: (n) => byName(providers, scenario.providers.map((p) => p.name), 'provider', n),
      info: () => ({
        relay: relay.url,
        mints: mints.map((m) => m.url),
        providers: providers.map((p, i) => ({ name: scenario.providers[i].name, url: p.url })),
        nwc: nwc.uri,
      }),
      stop: () => (stopped ??= teardown()),
    };
  } catch (err) {
    await teardown();
    throw err;
  }
}

/** A sat token of `amount` minted at a world mint, paid over the world's Lightning (a provider's starting pool). */
async function mintToken(mint: TestMint, lightning: LightningNetwork, amount: number): Promise<string> {
  const wallet = new Wallet(mint.url, { unit: 'sat' });
  await wallet.loadMint();
  const quote = await wallet.createMintQuoteBolt11(amount);
  lightning.pay(quote.request);
  const proofs = await wallet.mintProofsBolt11(amount, quote.quote);
  return getEncodedToken({ mint: mint.url, unit: 'sat', proofs });
}

/**
 * A mint URL as a node operator might have typed it: same mint, another string. routstr-core
 * compares a token's mint with its listed mints as exact strings (routstr/wallet.py
 * `if token_obj.mint not in destinations`, v0.4.5), so any other spelling makes a token foreign.
 * 'explicit-port': the port written out - the scheme's default (`https://mint.example:443`) when
 * the URL has none, else (the world's mints always listen on another port) with a leading zero,
 * `:08080`, which a URL parser reads as the same port and a string comparison does not.
 */
export function spellMint(url: string, spelling: ScenarioProvider['mintSpelling'] = 'as-is'): string {
  if (spelling === 'trailing-slash') return url.replace(/\/*$/, '/');
  if (spelling === 'upper-case') return url.replace(/^[a-z]+:\/\/[^/]+/i, (origin) => origin.toUpperCase());
  if (spelling === 'explicit-port') {
    return url.replace(/^([a-z]+:\/\/[^/:]+)(?::(\d+))?/i, (_, origin: string, port?: string) =>
      port ? `${origin}:0${port}` : `${origin}:${origin.toLowerCase().startsWith('https:') ? 443 : 80}`);
  }
  return url;
}

/** mulberry32 (test/rng.ts): a small seeded PRNG, so a scenario's flaky providers fail the same way each run. */
export const seededRandom = rng;
