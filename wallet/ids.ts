// Local ids for swaps and other operations of this wallet.

/** A short random id, e.g. `swap_3f9a...` (20 hex digits). */
export function newId(prefix: string): string {
  return `${prefix}_${crypto.randomUUID().replace(/-/g, '').slice(0, 20)}`;
}
