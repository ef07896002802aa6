// The books on the control socket: client keys, the request audit and its verification. The
// CLI calls the same handlers in-process on the data directory when no daemon runs, so both
// paths answer with the same JSON (snake_case, amounts with their unit in the name).
import { z } from 'zod';
import type { ControlHandlers } from './server.ts';
import type { DB } from '../../db/sqlite.ts';
import type { ClientKey, ClientKeys } from '../api/auth.ts';
import { BadRequestError } from '../api/errors.ts';
import type { Budgets } from '../requests/budgets.ts';
import { auditReport } from '../requests/audit.ts';
import type { PaymentFacts } from '../requests/payment-facts.ts';
import { verifyRequests } from '../requests/verify.ts';

export interface BooksDeps {
  db: DB;
  keys: ClientKeys;
  budgets: Budgets;
  /** The wallet's facts about a payment; without it `requests.verify` is not offered. */
  paymentFacts?: (paymentId: string) => PaymentFacts | undefined;
}

/** A client key as the CLI and the admin API show it (never the key itself). */
export function keyJson(k: ClientKey) {
  return {
    name: k.name, prefix: k.prefix, admin: k.admin, daily_sats: k.dailySats, max_sats_per_request: k.maxSatsPerRequest,
    created_at: new Date(k.createdAt).toISOString(), revoked_at: k.revokedAt === null ? null : new Date(k.revokedAt).toISOString(),
  };
}

const Sats = z.number().int().positive().nullable().optional();
const Create = z.object({ name: z.string(), daily_sats: Sats, max_sats_per_request: Sats, admin: z.boolean().optional() });
const Name = z.object({ name: z.string() });
const Audit = z.object({
  since: z.number().int().optional(), until: z.number().int().optional(), client: z.string().optional(), provider: z.string().optional(),
  flagged: z.boolean().optional(), attempts: z.boolean().optional(),
});

/** Parse control parameters; a failure is the caller's (a BadRequestError), never a raw ZodError. */
function parse<T>(schema: z.ZodType<T>, params: unknown): T {
  const r = schema.safeParse(params ?? {});
  if (!r.success) throw new BadRequestError(`invalid parameters: ${r.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** 'keys.create', 'keys.list', 'keys.revoke', 'audit.requests' and (with paymentFacts) 'requests.verify'. */
export function booksControlHandlers(deps: BooksDeps): ControlHandlers {
  const { db, keys, budgets } = deps;
  const handlers: ControlHandlers = {
    'keys.create': (p) => {
      const a = parse(Create, p);
      const { key, client } = keys.create({ name: a.name, admin: a.admin, dailySats: a.daily_sats, maxSatsPerRequest: a.max_sats_per_request });
      const { name, ...rest } = keyJson(client);
      return { name, key, ...rest }; // DESIGN.md: {"name","key",...}
    },
    'keys.list': () => ({
      keys: keys.list().map((k) => ({ ...keyJson(k), spent_today_msat: budgets.spentTodayMsat(k.name) })),
    }),
    'keys.revoke': (p) => keyJson(keys.revoke(parse(Name, p).name)),
    'audit.requests': (p) => {
      const { attempts, ...filter } = parse(Audit, p);
      return auditReport(db, filter, { attempts });
    },
  };
  const facts = deps.paymentFacts;
  if (facts) handlers['requests.verify'] = () => verifyRequests(db, facts);
  return handlers;
}
