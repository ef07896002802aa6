// What every wallet operation needs, built once by CashuWallet and passed down.
import type { Logger } from '../protocol/logger.ts';
import type { DB } from '../db/sqlite.ts';
import type { Clock, ProofStore } from './store.ts';
import type { Ledger } from './ledger.ts';
import type { MintRegistry } from './mints.ts';

export interface WalletContext {
  db: DB;
  store: ProofStore;
  ledger: Ledger;
  mints: MintRegistry;
  clock: Clock;
  logger: Logger;
}

/** A short random id for swaps and other local operations. */
export function newId(prefix: string): string {
  return `${prefix}_${crypto.randomUUID().replace(/-/g, '').slice(0, 20)}`;
}
