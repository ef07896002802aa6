// Client keys: who may use the daemon, with what scope and limits. A key is `sr_` + 32
// base64url characters (24 random bytes) and is shown once, at creation; the table keeps its
// SHA-256 (a random 192-bit key needs no slow hash) and its first characters, by which a
// presented key finds its candidate rows before the hashes are compared in constant time.
// Revoked keys keep their row (the request ledger names clients by key name), so a name is
// never reused. Owner 'client_keys' in the migration runner.
import crypto from 'node:crypto';
import { migrate, type DB } from '../../db/sqlite.ts';
import { BadRequestError, ForbiddenError, UnauthorizedError } from './errors.ts';

export const CLIENT_KEY_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE client_keys (
    name                  TEXT PRIMARY KEY,
    prefix                TEXT NOT NULL,      -- 'sr_' + the first PREFIX_CHARS of the secret part
    hash                  BLOB NOT NULL,      -- sha256(key)
    admin                 INTEGER NOT NULL DEFAULT 0,
    daily_sats            INTEGER,            -- NULL: no daily budget
    max_sats_per_request  INTEGER,            -- NULL: no per-request cap
    created_at            INTEGER NOT NULL,
    revoked_at            INTEGER
  );
  CREATE INDEX client_keys_prefix ON client_keys (prefix);
  `,
];

export function migrateClientKeys(db: DB): void {
  migrate(db, 'client_keys', CLIENT_KEY_MIGRATIONS);
}

export const KEY_PREFIX = 'sr_';
const SECRET_BYTES = 24;
const SECRET_CHARS = 32; // base64url of 24 bytes, no padding
/** Characters of the secret kept in clear for lookup and display (the other 26 hold 156 bits). */
const PREFIX_CHARS = 6;
const KEY_RE = /^sr_[A-Za-z0-9_-]{32}$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A client as the request path sees it (never the key itself). */
export interface ClientKey {
  name: string;
  /** `sr_` and the first characters of the key, for display. */
  prefix: string;
  admin: boolean;
  dailySats: number | null;
  maxSatsPerRequest: number | null;
  createdAt: number;
  revokedAt: number | null;
}

export interface NewClientKey {
  name: string;
  admin?: boolean;
  dailySats?: number | null;
  maxSatsPerRequest?: number | null;
}

interface DbRow {
  name: string; prefix: string; hash: Buffer; admin: number; daily_sats: number | null; max_sats_per_request: number | null;
  created_at: number; revoked_at: number | null;
}

const fromDb = (r: DbRow): ClientKey => ({
  name: r.name, prefix: r.prefix, admin: r.admin === 1, dailySats: r.daily_sats, maxSatsPerRequest: r.max_sats_per_request,
  createdAt: r.created_at, revokedAt: r.revoked_at,
});

const sha256 = (key: string) => crypto.createHash('sha256').update(key, 'utf8').digest();

function positiveSats(value: number | null | undefined, what: string): number | null {
  if (value === undefined || value === null) return null;
  if (!Number.isSafeInteger(value) || value <= 0) throw new BadRequestError(`${what} must be a positive whole number of sats, got ${value}`);
  return value;
}

export class ClientKeys {
  private readonly s;

  constructor(db: DB, private readonly clock: () => number = Date.now, private readonly random: (bytes: number) => Buffer = crypto.randomBytes) {
    migrateClientKeys(db);
    this.s = {
      insert: db.prepare(`INSERT INTO client_keys (name, prefix, hash, admin, daily_sats, max_sats_per_request, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
      get: db.prepare('SELECT * FROM client_keys WHERE name = ?'),
      byPrefix: db.prepare('SELECT * FROM client_keys WHERE prefix = ?'),
      all: db.prepare('SELECT * FROM client_keys ORDER BY created_at, name'),
      revoke: db.prepare('UPDATE client_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL'),
    };
  }

  /** Create a key; the returned `key` is the only time it exists in clear. */
  create(input: NewClientKey): { key: string; client: ClientKey } {
    if (!NAME_RE.test(input.name)) throw new BadRequestError(`key name must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got "${input.name}"`);
    const dailySats = positiveSats(input.dailySats, '--daily-sats');
    const maxSatsPerRequest = positiveSats(input.maxSatsPerRequest, '--max-sats-per-request');
    const existing = this.s.get.get(input.name) as DbRow | undefined;
    if (existing) throw new BadRequestError(existing.revoked_at === null ? `a key named "${input.name}" already exists` : `a revoked key was named "${input.name}"; names are not reused (the audit names clients by them)`);
    const key = KEY_PREFIX + this.random(SECRET_BYTES).toString('base64url').slice(0, SECRET_CHARS);
    const prefix = key.slice(0, KEY_PREFIX.length + PREFIX_CHARS);
    this.s.insert.run(input.name, prefix, sha256(key), input.admin ? 1 : 0, dailySats, maxSatsPerRequest, this.clock());
    return { key, client: this.get(input.name)! };
  }

  get(name: string): ClientKey | undefined {
    const r = this.s.get.get(name) as DbRow | undefined;
    return r ? fromDb(r) : undefined;
  }

  /** Every key, revoked ones included, oldest first. */
  list(): ClientKey[] {
    return (this.s.all.all() as DbRow[]).map(fromDb);
  }

  /** Revoke a key: refused from the next request on. Throws if there is no such active key. */
  revoke(name: string): ClientKey {
    if (this.s.revoke.run(this.clock(), name).changes !== 1) {
      const r = this.get(name);
      throw new BadRequestError(r ? `key "${name}" was already revoked` : `no key named "${name}"`);
    }
    return this.get(name)!;
  }

  /** The active client holding this key, or null (unknown, malformed or revoked). */
  verify(key: string): ClientKey | null {
    if (!KEY_RE.test(key)) return null;
    const presented = sha256(key);
    let match: DbRow | null = null;
    // Every candidate is compared (constant time per comparison), matched or not.
    for (const r of this.s.byPrefix.all(key.slice(0, KEY_PREFIX.length + PREFIX_CHARS)) as DbRow[]) {
      if (r.hash.length === presented.length && crypto.timingSafeEqual(r.hash, presented) && r.revoked_at === null) match = r;
    }
    return match ? fromDb(match) : null;
  }

  /** The client of an `Authorization: Bearer sr_...` header; UnauthorizedError otherwise. */
  authenticate(authorization: string | undefined | null): ClientKey {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    const client = m ? this.verify(m[1]) : null;
    if (!client) throw new UnauthorizedError();
    return client;
  }
}

/** Admin routes need a key created with --admin. */
export function requireAdmin(client: ClientKey): void {
  if (!client.admin) throw new ForbiddenError(`key "${client.name}" has no admin scope (create one with \`satroute keys create --admin\`)`);
}
