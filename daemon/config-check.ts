// The configuration as untrusted input: satroute.json may be any bytes (a half-written file, a
// directory, a FIFO, an editor's byte-order mark) and each value any string. Every problem is
// one ConfigError line naming the file or the environment variable and the key - found when the
// config is loaded, not as a stack trace from deep inside the daemon once it is starting.
// Light on purpose: every command loads the config, so nothing heavy is imported here.
import fs from 'node:fs';
import { bech32 } from '@scure/base';

/** The configuration cannot be used; the message is one line naming where and what. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Larger than any configuration; a bigger file is a mistake, not a config. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** One line, printable, clipped: how a value from the file or the environment is quoted back. */
export function quote(value: unknown, max = 80): string {
  let s: string;
  try {
    s = typeof value === 'string' ? value : String(JSON.stringify(value));
  } catch {
    s = String(value);
  }
  s = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ');
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}...` : s);
}

/** The text of the config file, or undefined when there is none. Throws ConfigError. */
export function readConfigText(file: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  // A FIFO would block the read for ever; a directory cannot be read at all.
  if (!st.isFile()) throw new ConfigError(`${file} is not a regular file`);
  if (st.size > MAX_CONFIG_BYTES) throw new ConfigError(`${file} is ${st.size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit for a configuration`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** The config file's JSON object. Throws ConfigError. */
export function parseConfigJson(file: string, text: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${quote((err as Error).message, 160).slice(1, -1)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${file} must hold one JSON object ({"mints": [...], ...}), not ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : `a ${typeof raw}`}`);
  }
  return raw as Record<string, unknown>;
}

function url(value: string, protocols: readonly string[]): URL | undefined {
  try {
    const u = new URL(value.trim());
    return protocols.includes(u.protocol) && u.hostname ? u : undefined;
  } catch {
    return undefined;
  }
}

/** Why a value cannot be used (a short phrase), or null when it can. */
export const VALUE_CHECKS = {
  /** host:port, IPv6 as [::1]:8340 (the format daemon/http.ts parseListen reads). */
  listen: (v: string): string | null => {
    const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(v.trim());
    return m && Number(m[3]) <= 65535 ? null : 'expected host:port, e.g. 127.0.0.1:8340';
  },
  relay: (v: string): string | null => (url(v, ['ws:', 'wss:']) ? null : 'expected a ws:// or wss:// relay URL'),
  mint: (v: string): string | null => (url(v, ['http:', 'https:']) ? null : 'expected an http(s) mint URL'),
  provider: (v: string): string | null => (url(/^[a-z][a-z0-9+.-]*:\/\//i.test(v.trim()) ? v : `https://${v.trim()}`, ['http:', 'https:']) ? null : 'expected an http(s) provider URL'),
  /** A curator pubkey: 64 hex characters, or an npub with a valid checksum. */
  curator: (v: string): string | null => {
    const c = v.trim();
    if (/^[0-9a-f]{64}$/i.test(c)) return null;
    try {
      const d = bech32.decode(c as `${string}1${string}`);
      if (d.prefix === 'npub' && bech32.fromWords(d.words).length === 32) return null;
    } catch {
      // not bech32
    }
    return 'expected a 64-character hex pubkey or an npub';
  },
  socksProxy: (v: string): string | null => {
    const u = url(/^[a-z0-9]+:\/\//i.test(v.trim()) ? v : `socks5://${v.trim()}`, ['socks5:', 'socks5h:', 'socks:']);
    return u ? null : 'expected socks5://host:port';
  },
} as const;

/** The values a loaded config must have usable, with where each came from. */
export interface CheckedValues {
  listen: string;
  relays: readonly string[];
  mints: readonly string[];
  providers: readonly string[];
  curator?: string;
  socksProxy?: string;
}

/** Throw a ConfigError naming `where(key)` for the first unusable value. */
export function checkValues(c: CheckedValues, where: (key: keyof CheckedValues) => string): void {
  const fail = (key: keyof CheckedValues, index: number | null, value: string, problem: string): never => {
    throw new ConfigError(`${where(key)}${index === null ? '' : `[${index}]`}: ${problem}, got ${quote(value)}`);
  };
  const one = (key: keyof CheckedValues, value: string | undefined, check: (v: string) => string | null) => {
    const problem = value === undefined ? null : check(value);
    if (problem) fail(key, null, value!, problem);
  };
  const each = (key: keyof CheckedValues, values: readonly string[], check: (v: string) => string | null) => {
    values.forEach((v, i) => {
      const problem = check(v);
      if (problem) fail(key, i, v, problem);
    });
  };
  one('listen', c.listen, VALUE_CHECKS.listen);
  each('relays', c.relays, VALUE_CHECKS.relay);
  each('mints', c.mints, VALUE_CHECKS.mint);
  each('providers', c.providers, VALUE_CHECKS.provider);
  one('curator', c.curator, VALUE_CHECKS.curator);
  one('socksProxy', c.socksProxy, VALUE_CHECKS.socksProxy);
}
