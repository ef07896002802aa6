// Counting how often a ProofStore runs one of its prepared reads (tests of its in-memory caches).
import type { ProofStore } from '../../wallet/store.ts';

/** Wrap `store`'s prepared statement `name` so each `.all()` is counted; returns the count so far. */
export function countReads(store: ProofStore, name: string): () => number {
  const stmt = (store as unknown as { s: Record<string, { all: (...a: unknown[]) => unknown }> }).s[name];
  const all = stmt.all.bind(stmt);
  let n = 0;
  stmt.all = (...args: unknown[]) => (n++, all(...args));
  return () => n;
}
