// cashuB (NUT-00 V4) token encoding for the request path: the same string cashu-ts 4.8.0's
// getEncodedToken(token, { removeDleq: true }) returns, written straight into one buffer.
// Why: every paid request encodes one token while its proofs are taken, and cashu-ts's encoder
// (a generic CBOR writer over a number[], plus Amount objects and copies of every proof) showed
// ~90 us a request in a CPU profile of that path; in a warm loop a 3-5 proof token takes ~17 us
// there and ~3 us here (bench/wallet.ts cashub_encode_us). This is a format, not crypto or
// protocol logic, and it is tested byte for byte against cashu-ts (test/wallet/cashu-b.test.ts).
//
// What cashu-ts 4.8.0 writes (src/utils/cbor.ts; getEncodedToken in src/utils/core.ts), as
// reproduced here:
//   "cashuB" + base64url without padding of the CBOR map
//     { m: mint (text, as given), u: unit || 'sat' (text),
//       t: [ { i: keyset id (bytes), p: [ { a: amount (uint), s: secret (text), c: C (bytes),
//                                          pe?: p2pk_e (bytes), w?: JSON.stringify(witness) } ] } ] }
//   - keyset ids are cut to their first 16 hex characters (8 bytes): a version-01 id travels as
//     its short id, a version-00 id whole; proofs are grouped by that short id, groups in the order
//     each first appears;
//   - DLEQ proofs are removed; pe and w only when truthy; no memo (we never send one);
//   - heads use the shortest CBOR length (an amount >= 2^32 takes the 8-byte form).
// Anything else (a legacy base64 keyset id, a non-hex C, an unsafe amount, ...) goes to cashu-ts
// itself, so the answer is always cashu-ts's, including its errors.
import { Buffer } from 'node:buffer';
import { getEncodedToken } from '@cashu/cashu-ts';
import { toCashuProof, type StoredProof } from './store.ts';

/** What a proof needs to travel in a token (a StoredProof has it; its DLEQ is never sent). */
export type CashuBProof = Pick<StoredProof, 'keysetId' | 'amount' | 'secret' | 'C' | 'witness' | 'p2pkE'>;

export interface CashuBToken {
  mint: string;
  unit: string;
  proofs: readonly CashuBProof[];
}

/** The cashuB token for these proofs, without DLEQ: identical to cashu-ts's getEncodedToken(..., { removeDleq: true }). */
export function encodeCashuB(token: CashuBToken): string {
  return encodeCashuBDirect(token) ?? encodeWithCashuTs(token);
}

/** The same token through cashu-ts, for inputs encodeCashuBDirect does not reproduce. */
function encodeWithCashuTs(token: CashuBToken): string {
  return getEncodedToken({ mint: token.mint, unit: token.unit, proofs: token.proofs.map(toCashuProof) }, { removeDleq: true });
}

// Keyset ids starting with 0 (versions 00 and 01), even-length hex: cashu-ts accepts any even-length
// hex id; the leading 0 also keeps the short id from being an integer-like object key, which
// would reorder cashu-ts's groups (Object.keys lists those first).
const KEYSET_ID = /^0[0-9a-fA-F]*$/;
const MAX_ARRAY = 0xffff; // cashu-ts refuses longer arrays
const TWO_32 = 2 ** 32;

// One scratch buffer, grown when a token needs more: encoding is synchronous.
let buf = Buffer.allocUnsafe(4096);
let at = 0;

/** The token string, or null when the input is outside what is reproduced here (exported for tests: they check it is taken). */
export function encodeCashuBDirect(token: CashuBToken): string | null {
  const { mint, proofs } = token;
  const unit = token.unit || 'sat';
  if (typeof mint !== 'string' || typeof unit !== 'string' || !Array.isArray(proofs) || proofs.length > MAX_ARRAY) return null;

  // Pass 1: check every field, group by short id, and bound the size (UTF-8 is at most 3 bytes a UTF-16 unit).
  const groups = new Map<string, number[]>();
  const witnesses: (string | null)[] = new Array(proofs.length);
  let bound = 32 + 3 * (mint.length + unit.length);
  for (let k = 0; k < proofs.length; k++) {
    const p = proofs[k];
    const id = p.keysetId;
    if (typeof id !== 'string' || id.length % 2 !== 0 || !KEYSET_ID.test(id)) return null;
    if (!Number.isSafeInteger(p.amount) || p.amount < 0) return null;
    if (typeof p.secret !== 'string' || !isHex(p.C)) return null;
    if (p.p2pkE && !isHex(p.p2pkE)) return null;
    let w: string | null = null;
    if (p.witness) {
      let json: unknown;
      try {
        json = JSON.stringify(p.witness);
      } catch {
        return null; // cashu-ts fails on it the same way; let it say so
      }
      if (typeof json !== 'string') return null;
      w = json;
    }
    witnesses[k] = w;
    const short = id.length > 16 ? id.slice(0, 16) : id;
    const group = groups.get(short);
    if (group) group.push(k);
    else groups.set(short, [k]);
    bound += 48 + 3 * p.secret.length + p.C.length / 2 + (p.p2pkE ? p.p2pkE.length / 2 : 0) + (w ? 3 * w.length : 0);
  }
  bound += 24 * groups.size;
  if (buf.length < bound) buf = Buffer.allocUnsafe(Math.max(bound, 2 * buf.length));

  // Pass 2: write the CBOR.
  at = 0;
  head(5, 3);
  key('m'); text(mint);
  key('u'); text(unit);
  key('t'); head(4, groups.size);
  for (const [short, members] of groups) {
    head(5, 2);
    key('i'); hex(short);
    key('p'); head(4, members.length);
    for (const k of members) {
      const p = proofs[k];
      const w = witnesses[k];
      head(5, 3 + (p.p2pkE ? 1 : 0) + (w !== null ? 1 : 0));
      key('a'); head(0, p.amount);
      key('s'); text(p.secret);
      key('c'); hex(p.C);
      if (p.p2pkE) { key('pe'); hex(p.p2pkE); }
      if (w !== null) { key('w'); text(w); }
    }
  }
  return 'cashuB' + buf.toString('base64url', 0, at);
}

/** Even-length hex, either case (what noble's hexToBytes accepts). */
function isHex(s: unknown): s is string {
  return typeof s === 'string' && s.length % 2 === 0 && HEX.test(s);
}
const HEX = /^[0-9a-fA-F]*$/;

/** A map key: a text string of one or two ASCII letters. */
function key(k: string): void {
  buf[at++] = 0x60 | k.length;
  for (let i = 0; i < k.length; i++) buf[at++] = k.charCodeAt(i);
}

/** A CBOR head: major type and the shortest argument form (n a safe integer). */
function head(major: number, n: number): void {
  const m = major << 5;
  if (n < 24) {
    buf[at++] = m | n;
  } else if (n < 0x100) {
    buf[at++] = m | 24;
    buf[at++] = n;
  } else if (n < 0x10000) {
    buf[at++] = m | 25;
    at = buf.writeUInt16BE(n, at);
  } else if (n < TWO_32) {
    buf[at++] = m | 26;
    at = buf.writeUInt32BE(n, at);
  } else {
    buf[at++] = m | 27;
    at = buf.writeUInt32BE(Math.floor(n / TWO_32), at);
    at = buf.writeUInt32BE(n % TWO_32, at);
  }
}

/** A text string, UTF-8 (a lone surrogate becomes U+FFFD, as with TextEncoder). */
function text(s: string): void {
  const len = Buffer.byteLength(s, 'utf8');
  head(3, len);
  at += buf.write(s, at, len, 'utf8');
}

/** A byte string from hex the caller checked. */
function hex(s: string): void {
  head(2, s.length / 2);
  at += buf.write(s, at, s.length / 2, 'hex');
}
