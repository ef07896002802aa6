// A small structured logger, injected everywhere (nullLogger by default). Lines are JSON on
// stderr, one entry per line (JSON escapes newlines, so a multi-line message stays one journald
// entry); anything that looks like a Cashu token, an NWC secret or a client key is redacted
// before it is written, so secrets never reach a log even when an error message carries one,
// and so is the value of any field named like a secret (a logged proof's `secret`).

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const nullLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LEVELS;

const SECRET_PATTERNS: [RegExp, string][] = [
  [/cashu[AB][A-Za-z0-9_\-+/=]{8,}/g, 'cashu[redacted]'],
  [/(nostr\+walletconnect:\/\/[^\s"']*?secret=)[0-9a-fA-F]+/g, '$1[redacted]'],
  [/\bsk-[A-Za-z0-9_-]{8,}/g, 'sk-[redacted]'],
  [/\bsr_[A-Za-z0-9_-]{8,}/g, 'sr_[redacted]'],
  [/\bnsec1[02-9ac-hj-np-z]{20,}/g, 'nsec1[redacted]'],
];

/** Field names whose values are secrets whatever they look like (proof secrets are bare hex). */
const SECRET_KEYS = new Set(['secret', 'secrets', 'proofs', 'preimage']);

/** syslog priorities, which journald reads from a `<N>` line prefix (sd-daemon(3)). */
const SYSLOG_PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

/** Remove secrets from a string (tokens, NWC secrets, API keys). */
export function redact(text: string): string {
  let out = text;
  for (const [re, replacement] of SECRET_PATTERNS) out = out.replace(re, replacement);
  return out;
}

/**
 * A JSON-lines logger writing to a stream (stderr by default) at or above `level`. With
 * `syslogPrefix` (stderr connected to journald) each line starts with its `<N>` priority, so
 * `journalctl -p warning` filters by level.
 */
export function createLogger(options: { level?: LogLevel; write?: (line: string) => void; clock?: () => number; name?: string; syslogPrefix?: boolean } = {}): Logger {
  const min = LEVELS[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const clock = options.clock ?? Date.now;
  const log = (level: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[level] < min) return;
    const entry = { time: new Date(clock()).toISOString(), level, ...(options.name ? { name: options.name } : {}), msg, ...fields };
    write(`${options.syslogPrefix ? `<${SYSLOG_PRIORITY[level]}>` : ''}${redact(JSON.stringify(entry, errorReplacer))}\n`);
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

function errorReplacer(key: string, value: unknown): unknown {
  if (SECRET_KEYS.has(key) && value != null) return '[redacted]';
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === 'bigint') return value.toString();
  return value;
}
