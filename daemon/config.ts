// Configuration: satroute.json in the data directory, overridden by the environment.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { checkValues, ConfigError, parseConfigJson, readConfigText } from './config-check.ts';

export const DEFAULT_RELAYS = ['wss://relay.damus.io', 'wss://nos.lol', 'wss://relay.routstr.com', 'wss://relay.nostr.band'];
export const DEFAULT_LISTEN = '127.0.0.1:8340';

const ConfigFile = z
  .object({
    listen: z.string().optional(),
    relays: z.array(z.string()).optional(),
    mints: z.array(z.string()).optional(),
    /** Providers given by URL, probed alongside those found on Nostr. */
    providers: z.array(z.string()).optional(),
    /** Curator pubkey (hex) whose kind-38425 reviews are honoured. */
    curator: z.string().optional(),
    excludeBadReviews: z.boolean().optional(),
    /** SOCKS5 proxy (socks5://host:port) for .onion providers; without it they are skipped. */
    socksProxy: z.string().optional(),
    /** USD per sat, only to price models that publish no sats_pricing. */
    usdPerSat: z.number().positive().optional(),
    probe: z
      .object({
        concurrency: z.number().int().positive().optional(),
        refreshIntervalMs: z.number().int().positive().optional(),
        timeoutMs: z.number().int().positive().optional(),
      })
      .optional(),
    /** The request path (daemon/requests/lifecycle.ts); every key optional. */
    requests: z
      .object({
        /** Providers tried per request, 1-3. */
        maxAttempts: z.number().int().min(1).max(3).optional(),
        /** Provider call timeouts, ms: connect, first byte (an X-Cashu stream is buffered by the node: the whole generation), idle between body pieces, total. */
        timeouts: z
          .object({ connectMs: z.number().int().positive(), firstByteMs: z.number().int().positive(), idleMs: z.number().int().positive(), totalMs: z.number().int().positive() })
          .partial()
          .optional(),
        /** Top-ups answering a node's minimum_balance_required, capped per provider and window. */
        topUp: z.object({ maxCount: z.number().int().nonnegative(), maxSat: z.number().int().nonnegative(), windowMs: z.number().int().positive() }).partial().optional(),
        /** On SIGTERM: how long requests in flight may run on before they are canceled (and settled), ms. */
        shutdownGraceMs: z.number().int().nonnegative().optional(),
        /** Largest request body accepted, bytes. */
        maxBodyBytes: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    /** How requests pay (daemon/requests/sessions.ts): session balances for live streaming, capped. */
    payment: z
      .object({
        /** Streamed requests: from a small session balance at the provider (live), or per request by X-Cashu (buffered by the node). */
        streaming: z.enum(['session', 'xcashu']),
        /** Most sats held at one provider; default 4 worst-case requests of the models used there. */
        providerCapSat: z.number().int().positive(),
        /** Most sats held at all providers together (default 2000). */
        globalCapSat: z.number().int().positive(),
        /** A session unused this long is refunded, ms (default 180000). */
        idleRefundMs: z.number().int().positive(),
        /** How long a request waits for room under the caps before paying by X-Cashu, ms (default 30000). */
        waitMs: z.number().int().nonnegative(),
      })
      .partial()
      .strict()
      .optional(),
    /** How commits reach the disk (daemon/durability.ts). */
    storage: z
      .object({
        /** 'interval': commits without fsync, the WAL synced every syncIntervalMs by a background thread (a power cut loses at most that much, reconciled with the mints at the next start); 'commit': every commit fsynced. */
        durability: z.enum(['interval', 'commit']),
        /** How often the WAL is synced in 'interval' durability, ms (default 200). */
        syncIntervalMs: z.number().int().min(10).max(10_000),
      })
      .partial()
      .strict()
      .optional(),
    /** Router tuning (breaker, stats): validated by daemon/route/index.ts. */
    routing: z.unknown().optional(),
    /** `model: "auto"`: validated by daemon/route/auto.ts. */
    auto: z.unknown().optional(),
    autoTopup: z
      .object({
        thresholdSat: z.number().int().nonnegative(),
        amountSat: z.number().int().positive(),
        minIntervalMs: z.number().int().positive().optional(),
        dailyCapSat: z.number().int().positive().optional(),
      })
      .optional(),
  })
  .passthrough();
export type ConfigFile = z.infer<typeof ConfigFile>;

export interface Config extends ConfigFile {
  dataDir: string;
  listen: string;
  relays: string[];
  mints: string[];
  providers: string[];
}

/** The data directory: SATROUTE_DATA_DIR, else systemd's STATE_DIRECTORY, else ~/.local/share/satroute. */
export function resolveDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SATROUTE_DATA_DIR) return path.resolve(env.SATROUTE_DATA_DIR);
  if (env.STATE_DIRECTORY) return path.resolve(env.STATE_DIRECTORY.split(':')[0]);
  return path.join(os.homedir(), '.local', 'share', 'satroute');
}

function splitList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

export { ConfigError };

const ENV_OF: Partial<Record<string, string>> = { listen: 'SATROUTE_LISTEN', relays: 'SATROUTE_RELAYS', mints: 'SATROUTE_MINTS', providers: 'SATROUTE_PROVIDERS' };

/** Load the config for a data directory, creating the directory (0700) if needed. Throws ConfigError. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = resolveDataDir(env);
  try {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new ConfigError(`data directory ${dataDir} cannot be created: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const file = path.join(dataDir, 'satroute.json');
  let parsed: ConfigFile = {};
  const text = readConfigText(file);
  if (text !== undefined) {
    const result = ConfigFile.safeParse(parseConfigJson(file, text));
    if (!result.success) throw new ConfigError(`${file}: ${result.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ')}`);
    parsed = result.data;
  }
  const config: Config = {
    ...parsed,
    dataDir,
    listen: env.SATROUTE_LISTEN ?? parsed.listen ?? DEFAULT_LISTEN,
    relays: splitList(env.SATROUTE_RELAYS) ?? parsed.relays ?? DEFAULT_RELAYS,
    mints: splitList(env.SATROUTE_MINTS) ?? parsed.mints ?? [],
    providers: splitList(env.SATROUTE_PROVIDERS) ?? parsed.providers ?? [],
  };
  checkValues(config, (key) => (ENV_OF[key] && env[ENV_OF[key]!] !== undefined ? ENV_OF[key]! : `${file}: ${key}`));
  return config;
}

/** Persist changes to satroute.json (mode 0600), keeping keys this version does not know. */
export function saveConfigFile(dataDir: string, patch: Partial<ConfigFile>): void {
  const file = path.join(dataDir, 'satroute.json');
  const text = readConfigText(file);
  const current = text === undefined ? {} : (parseConfigJson(file, text) as ConfigFile);
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ ...current, ...patch }, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}
