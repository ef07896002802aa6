// Mint, unit and amount of a cashuB (NUT-00 V4) token, read straight from its bytes: the same answer
// as cashu-ts 4.8.0's getTokenMetadata(token) followed by meta.amount.toNumber(), including its errors.
// Why: the change queue reads every change token a provider returns inside the settlement's SQLite
// transaction, and getTokenMetadata (a generic CBOR decoder building every proof, hex strings and
// Amount objects included) showed ~85 us a request in a CPU profile of that path; in a warm loop
// a 1-6 proof token with DLEQs takes ~20 us there and ~2 us here (bench/wallet.ts
// cashub_metadata_us). This reads a format, not crypto or protocol logic, and is tested against
// cashu-ts on valid and mutated tokens (test/wallet/cashu-b-read.test.ts).
//
// What cashu-ts 4.8.0 makes of a token (getTokenMetadata, getDecodedToken's template step and the
// CBOR decoder in src/utils/cbor.ts), for the shape read here:
//   "cashuB" + base64url of the CBOR map
//     { m: mint (text), u?: unit (text; '' or absent -> 'sat'), d?: memo (text),
//       t: [ { i: keyset id (bytes), p: [ { a: amount (uint), s: secret (text), c: C (bytes),
//                                            d?: { e, s, r (bytes) }, pe?: bytes, w?: text } ] } ] }
//   - the amount is the sum of every a (bigints there); toNumber throws past 2^53 - 1;
//   - heads may use a longer form than needed (cashu-ts accepts them), text is UTF-8 decoded as
//     TextDecoder does (bad bytes -> U+FFFD, a leading BOM dropped).
// Anything else goes to cashu-ts itself, so the answer is always cashu-ts's, error included: another
// prefix (cashuA, cashu:, web+cashu://, a bare B), a base64 character outside [A-Za-z0-9_-] or a
// length that leaves a lone character, any key not listed above or listed twice, a value of
// another CBOR type (tags, floats, null, booleans, negative or text amounts, indefinite lengths),
// a missing m, t, i, p, a, s, c or DLEQ e, s, r, a length past the end, bytes after the map, a
// sum over 2^53 - 1.
// Work is linear in the token's length, with no recursion (the shape has a fixed depth).
import { Buffer } from 'node:buffer';
import { getTokenMetadata } from '@cashu/cashu-ts';

/** What a token claims: its mint, unit and total amount in that unit. */
export interface CashuTokenMetadata {
  mint: string;
  unit: string;
  amount: number;
}

/** Mint, unit and amount of a Cashu token: identical to cashu-ts's getTokenMetadata with amount.toNumber(), which throws the same errors. */
export function tokenMetadata(token: string): CashuTokenMetadata {
  return tokenMetadataDirect(token) ?? metadataWithCashuTs(token);
}

/** The same through cashu-ts, for tokens tokenMetadataDirect does not read. */
function metadataWithCashuTs(token: string): CashuTokenMetadata {
  const meta = getTokenMetadata(token);
  return { mint: meta.mint, unit: meta.unit, amount: meta.amount.toNumber() };
}

const TOKEN = /^cashuB[A-Za-z0-9_-]*$/;
const PREFIX = 'cashuB'.length;
const MAP = 5;
const ARRAY = 4;
const TEXT = 3;
const BYTES = 2;
const UINT = 0;
const TWO_32 = 2 ** 32;
// Map keys by character code; "pe" gets a code no one-byte key has.
const [A, C, D, E, I, M, P, R, S, T, U, W] = ['a', 'c', 'd', 'e', 'i', 'm', 'p', 'r', 's', 't', 'u', 'w'].map((c) => c.charCodeAt(0));
const PE = 0x100;
const NOT_HERE = -1;

// The decoded bytes go to one scratch buffer (reading is synchronous); a token too big for it gets
// a buffer of its own, so one huge token does not keep its memory.
const scratch = Buffer.allocUnsafe(16 * 1024);
let src = scratch;
let at = 0;
let end = 0;
const utf8 = new TextDecoder(); // as cashu-ts decodes text: not fatal, a leading BOM dropped

/** The token's metadata, or null when it is outside what is read here (exported for tests: they check it is taken). */
export function tokenMetadataDirect(token: string): CashuTokenMetadata | null {
  if (typeof token !== 'string' || !TOKEN.test(token) || (token.length - PREFIX) % 4 === 1) return null;
  const need = Math.ceil(((token.length - PREFIX) * 3) / 4);
  src = need <= scratch.length ? scratch : Buffer.allocUnsafe(need);
  // Node's base64url decoding of the checked alphabet gives the bytes cashu-ts gets (base64 with '=' padding added).
  end = src.write(token.slice(PREFIX), 0, 'base64url');
  at = 0;
  const out = read();
  src = scratch;
  return out;
}

/** The top-level map. */
function read(): CashuTokenMetadata | null {
  let mint: string | null = null;
  let unit: string | null = null;
  let amount = NOT_HERE;
  let seen = 0;
  for (let n = head(MAP); n > 0; n--) {
    const k = key();
    if (k === M && !(seen & 1)) {
      seen |= 1;
      mint = text();
      if (mint === null) return null;
    } else if (k === U && !(seen & 2)) {
      seen |= 2;
      unit = text();
      if (unit === null) return null;
    } else if (k === D && !(seen & 4)) {
      seen |= 4;
      if (!skip(TEXT)) return null;
    } else if (k === T && !(seen & 8)) {
      seen |= 8;
      amount = keysets();
      if (amount === NOT_HERE) return null;
    } else return null;
  }
  // A head that failed leaves `at` past the end (see head()); trailing bytes are left to cashu-ts too.
  if (at !== end || mint === null || amount === NOT_HERE) return null;
  return { mint, unit: unit || 'sat', amount };
}

/** t: the keyset groups; the sum of their amounts, or NOT_HERE. */
function keysets(): number {
  let sum = 0;
  for (let groups = head(ARRAY); groups > 0; groups--) {
    let seen = 0;
    for (let n = head(MAP); n > 0; n--) {
      const k = key();
      if (k === I && !(seen & 1)) {
        seen |= 1;
        if (!skip(BYTES)) return NOT_HERE;
      } else if (k === P && !(seen & 2)) {
        seen |= 2;
        const amount = proofs();
        if (amount === NOT_HERE) return NOT_HERE;
        sum += amount;
        if (sum > Number.MAX_SAFE_INTEGER) return NOT_HERE; // toNumber would throw: cashu-ts says so
      } else return NOT_HERE;
    }
    if (seen !== 3 || at > end) return NOT_HERE;
  }
  return at > end ? NOT_HERE : sum;
}

/** p: one group's proofs; the sum of their amounts, or NOT_HERE. */
function proofs(): number {
  let sum = 0;
  for (let proofs = head(ARRAY); proofs > 0; proofs--) {
    let seen = 0;
    let amount = 0;
    for (let n = head(MAP); n > 0; n--) {
      const k = key();
      if (k === A && !(seen & 1)) {
        seen |= 1;
        amount = head(UINT);
        if (amount < 0) return NOT_HERE;
      } else if (k === S && !(seen & 2)) {
        seen |= 2;
        if (!skip(TEXT)) return NOT_HERE;
      } else if (k === C && !(seen & 4)) {
        seen |= 4;
        if (!skip(BYTES)) return NOT_HERE;
      } else if (k === D && !(seen & 8)) {
        seen |= 8;
        if (!dleq()) return NOT_HERE;
      } else if (k === PE && !(seen & 16)) {
        seen |= 16;
        if (!skip(BYTES)) return NOT_HERE;
      } else if (k === W && !(seen & 32)) {
        seen |= 32;
        if (!skip(TEXT)) return NOT_HERE;
      } else return NOT_HERE;
    }
    if ((seen & 7) !== 7 || at > end) return NOT_HERE;
    sum += amount; // checked by the caller: past 2^53 - 1 it stays past, inexact or not
  }
  return at > end ? NOT_HERE : sum;
}

/** d of a proof: exactly e, s and r, each bytes. */
function dleq(): boolean {
  let seen = 0;
  for (let n = head(MAP); n > 0; n--) {
    const k = key();
    const bit = k === E ? 1 : k === S ? 2 : k === R ? 4 : 0;
    if (bit === 0 || seen & bit || !skip(BYTES)) return false;
    seen |= bit;
  }
  return seen === 7 && at <= end;
}

/**
 * A CBOR head of this major type: its argument, any length form (cashu-ts accepts them all).
 * Anything else (another type, an indefinite or reserved length, past the end, over 2^53 - 1, a
 * count the rest cannot hold) moves `at` past the end and returns -1, which every loop takes as zero.
 */
function head(major: number): number {
  if (at >= end || src[at] >> 5 !== major) return fail();
  const info = src[at++] & 31;
  let n: number;
  if (info < 24) n = info;
  else if (info === 24 && at + 1 <= end) n = src[at++];
  else if (info === 25 && at + 2 <= end) {
    n = src.readUInt16BE(at);
    at += 2;
  } else if (info === 26 && at + 4 <= end) {
    n = src.readUInt32BE(at);
    at += 4;
  } else if (info === 27 && at + 8 <= end) {
    const hi = src.readUInt32BE(at);
    if (hi >= 2 ** 21) return fail(); // over 2^53 - 1: a bigint there
    n = hi * TWO_32 + src.readUInt32BE(at + 4);
    at += 8;
  } else return fail();
  // Every item takes at least one byte: a longer array, map or string cannot be complete.
  if (major !== UINT && n > end - at) return fail();
  return n;
}

function fail(): -1 {
  at = end + 1;
  return -1;
}

/** A map key: its character code for one byte, PE for "pe"; any other key fails. */
function key(): number {
  const len = head(TEXT);
  if (len === 1) return src[at++];
  if (len === 2 && src[at] === P && src[at + 1] === E) {
    at += 2;
    return PE;
  }
  return fail();
}

/** Past a byte or text string (any bytes: cashu-ts's TextDecoder never fails). */
function skip(major: number): boolean {
  const len = head(major);
  if (len < 0) return false;
  at += len;
  return true;
}

/** A text string, decoded as cashu-ts decodes it. */
function text(): string | null {
  const len = head(TEXT);
  if (len < 0) return null;
  const from = at;
  at += len;
  for (let i = from; i < at; i++) if (src[i] >= 0x80) return utf8.decode(src.subarray(from, at));
  return src.toString('latin1', from, at);
}
