// Random ids on the request path (request and session ids), drawn from a pool of random bytes
// filled at once: crypto.randomBytes for each id cost ~8 us in a loop and ~75 us after an idle
// moment on the dev machine (a CPU profile of serial requests showed it at 0.04 ms a request);
// a fill of the pool serves 300 ids. The ids are unique, not secret.
import { randomFillSync } from 'node:crypto';

const pool = Buffer.alloc(4096);
let at = pool.length;

/** `bytes` fresh random bytes (a copy: later ids never share them). */
export function pooledRandomBytes(bytes: number): Buffer {
  if (bytes > pool.length) return randomFillSync(Buffer.alloc(bytes));
  if (at + bytes > pool.length) {
    randomFillSync(pool);
    at = 0;
  }
  const out = Buffer.from(pool.subarray(at, at + bytes));
  at += bytes;
  return out;
}

/** `prefix` + `bytes` random bytes in base64url, `-` and `_` written as `x` (one word to select), cut to `length` characters. */
export function randomId(prefix: string, bytes: number, length?: number): string {
  const text = pooledRandomBytes(bytes).toString('base64url').replace(/[-_]/g, 'x');
  return `${prefix}${length === undefined ? text : text.slice(0, length)}`;
}
