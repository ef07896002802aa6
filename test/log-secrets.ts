// No secret in the logs: a helper to check the whole log output of a run (in-process through
// captureLogs(), or a child's stderr as text) for Cashu tokens, proof secrets, NWC secrets,
// client keys (sr_...) and session keys (sk-...).
//
//   const leaks = findSecrets(stderr, secretsInDataDir(dataDir));   // [] when clean
//   assertNoSecrets(stderr, secretsInDataDir(dataDir));              // throws, naming each leak
//
// Two nets: shapes a secret always has (a token's cashuA/cashuB prefix, `secret=` in an NWC
// URI, the key prefixes, a JSON field named "secret"), and the exact values the run's data
// directory holds (proof secrets are bare hex, recognisable only by value). A leak is reported
// by kind, line and a short prefix, never the whole secret (CI logs are not secret either).
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createLogger, type Logger } from '../protocol/logger.ts';

const SHAPES: [kind: string, re: RegExp][] = [
  ['Cashu token', /cashu[AB][A-Za-z0-9_\-+/=]{16,}/g],
  ['NWC secret', /nostr\+walletconnect:\/\/[^\s"']*?secret=(?!\[redacted\])[0-9a-fA-F]{16,}/g],
  ['client key', /\bsr_(?!\[redacted\])[A-Za-z0-9_-]{8,}/g],
  ['session key', /\bsk-(?!\[redacted\])[A-Za-z0-9_-]{8,}/g],
  ['Nostr private key', /\bnsec1[02-9ac-hj-np-z]{20,}/g],
  ['secret field', /\\?"secret\\?":\s*\\?"(?!\[redacted\])[^"\\]{8,}/g],
];

/** Shorter known values would match by accident. */
const MIN_KNOWN_LENGTH = 16;

/** One description per leak found in text: kind, line number, a short prefix. */
export function findSecrets(text: string, known: Iterable<string> = []): string[] {
  const leaks: string[] = [];
  const lines = text.split('\n');
  const values = [...new Set(known)].filter((v) => v.length >= MIN_KNOWN_LENGTH);
  lines.forEach((line, i) => {
    for (const [kind, re] of SHAPES) for (const m of line.matchAll(re)) leaks.push(`${kind} on line ${i + 1}: ${m[0].slice(0, 14)}…`);
    for (const v of values) {
      // as written, or escaped inside a JSON string (a NUT-10 secret is itself JSON)
      if (line.includes(v) || line.includes(JSON.stringify(v).slice(1, -1))) leaks.push(`known secret on line ${i + 1}: ${v.slice(0, 8)}…`);
    }
  });
  return leaks;
}

/** Throw, naming every leak, when text holds a secret. */
export function assertNoSecrets(text: string, known: Iterable<string> = []): void {
  const leaks = findSecrets(text, known);
  if (leaks.length) throw new Error(`secrets in the log (${leaks.length}):\n  ${leaks.slice(0, 20).join('\n  ')}`);
}

/**
 * Every secret a data directory holds: from each SQLite file, every column named `secret`,
 * `secret` fields inside JSON text (stored blinded outputs) and any text that has a secret's
 * shape (stored tokens, session keys); from each JSON file, NWC URIs and their secret.
 */
export function secretsInDataDir(dataDir: string): string[] {
  const found = new Set<string>();
  const collect = (v: unknown, key = ''): void => {
    if (typeof v === 'string') {
      if (key === 'secret') found.add(v);
      const nwc = /^nostr\+walletconnect:\/\/.*[?&]secret=([0-9a-fA-F]+)/.exec(v);
      if (nwc) found.add(nwc[1]).add(v);
      if (SHAPES.some(([kind, re]) => kind !== 'secret field' && new RegExp(`^${re.source}$`).test(v))) found.add(v);
      if (/^[[{]/.test(v)) {
        try {
          collect(JSON.parse(v));
        } catch {
          // not JSON after all
        }
      }
    } else if (Array.isArray(v)) v.forEach((x) => collect(x));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) collect(x, k);
  };
  for (const name of fs.readdirSync(dataDir)) {
    const file = path.join(dataDir, name);
    if (/\.(sqlite|db)$/.test(name)) {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").pluck().all() as string[];
        for (const table of tables) {
          for (const row of db.prepare(`SELECT * FROM "${table.replaceAll('"', '""')}"`).all() as Record<string, unknown>[]) {
            for (const [column, v] of Object.entries(row)) collect(v, column);
          }
        }
      } finally {
        db.close();
      }
    } else if (name.endsWith('.json')) {
      try {
        collect(JSON.parse(fs.readFileSync(file, 'utf8')));
      } catch {
        // half-written or not ours
      }
    }
  }
  return [...found];
}

export interface LogCapture {
  /** Pass this to the code under test; it logs at debug level, every line kept. */
  readonly logger: Logger;
  readonly lines: string[];
  text(): string;
  assertNoSecrets(known?: Iterable<string>): void;
}

/** A real logger (the daemon's redaction included) whose every line is kept for checking. */
export function captureLogs(): LogCapture {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', write: (line) => lines.push(line), name: 'satroute' });
  return {
    logger,
    lines,
    text: () => lines.join(''),
    assertNoSecrets: (known = []) => assertNoSecrets(lines.join(''), known),
  };
}
