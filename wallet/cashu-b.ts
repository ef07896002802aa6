// cashuB (NUT-00 token V4) from stored proofs on the request path: byte for byte what cashu-ts
// 4.8 `getEncodedToken` writes (test/wallet/cashu-b.test.ts compares them), without its
// per-byte CBOR array writer and amount/regex round trips (~80 us -> ~10 us for a 5-proof token).
// Anything it does not know how to write exactly (a legacy keyset id, a DLEQ without its blinding
// factor, malformed hex) goes to cashu-ts itself, which also raises the errors.
import { getEncodedToken } from '@cashu/cashu-ts';
import { toCashuProof, type StoredProof } from './store.ts';

/** The cashuB token string for these proofs of `mint` in `unit`. */
export function encodeTokenB(mint: string, unit: string, proofs: readonly StoredProof[]): string {
  if (!proofs.every(writesExactly)) return getEncodedToken({ mint, unit, proofs: proofs.map(toCashuProof) });
  // Grouped by the short keyset id, in order of first appearance, as cashu-ts does (a plain object).
  const byId: Record<string, StoredProof[]> = {};
  for (const p of proofs) (byId[p.keysetId.slice(0, 16)] ??= []).push(p);
  const ids = Object.keys(byId);
  const out = new Writer();
  out.head(5, 3);
  out.text('m');
  out.text(mint);
  out.text('u');
  out.text(unit || 'sat');
  out.text('t');
  out.head(4, ids.length);
  for (const id of ids) {
    out.head(5, 2);
    out.text('i');
    out.hex(id);
    out.text('p');
    const list = byId[id];
    out.head(4, list.length);
    for (const p of list) {
      out.head(5, 3 + (p.dleq ? 1 : 0) + (p.p2pkE ? 1 : 0) + (p.witness ? 1 : 0));
      out.text('a');
      out.uint(p.amount);
      out.text('s');
      out.text(p.secret);
      out.text('c');
      out.hex(p.C);
      if (p.dleq) {
        out.text('d');
        out.head(5, 3);
        out.text('e');
        out.hex(p.dleq.e);
        out.text('s');
        out.hex(p.dleq.s);
        out.text('r');
        out.hex(p.dleq.r!);
      }
      if (p.p2pkE) {
        out.text('pe');
        out.hex(p.p2pkE);
      }
      if (p.witness) {
        out.text('w');
        out.text(JSON.stringify(p.witness));
      }
    }
  }
  return 'cashuB' + out.done().toString('base64url');
}

const HEX = /^(?:[0-9a-fA-F]{2})+$/;
const isHex = (v: unknown): v is string => typeof v === 'string' && HEX.test(v);

/** Can this proof be written here exactly as cashu-ts would (else cashu-ts writes it, or refuses)? */
export function writesExactly(p: StoredProof): boolean {
  if (!isHex(p.keysetId) || !isHex(p.C) || typeof p.secret !== 'string') return false;
  if (!Number.isSafeInteger(p.amount) || p.amount < 0) return false;
  if (p.dleq && !(isHex(p.dleq.e) && isHex(p.dleq.s) && isHex(p.dleq.r))) return false;
  if (p.p2pkE && !isHex(p.p2pkE)) return false;
  return true;
}

/** Minimal CBOR writer for what a cashuB token holds (maps, arrays, text, bytes, unsigned ints). */
class Writer {
  private buf = Buffer.allocUnsafe(2048);
  private n = 0;

  /** Major type + length/value, shortest form. */
  head(major: number, len: number): void {
    this.room(9);
    const m = major << 5;
    if (len < 24) this.buf[this.n++] = m | len;
    else if (len < 0x100) {
      this.buf[this.n++] = m | 24;
      this.buf[this.n++] = len;
    } else if (len < 0x10000) {
      this.buf[this.n++] = m | 25;
      this.n = this.buf.writeUInt16BE(len, this.n);
    } else if (len < 0x100000000) {
      this.buf[this.n++] = m | 26;
      this.n = this.buf.writeUInt32BE(len, this.n);
    } else {
      this.buf[this.n++] = m | 27;
      this.n = this.buf.writeBigUInt64BE(BigInt(len), this.n);
    }
  }

  uint(v: number): void {
    this.head(0, v);
  }

  text(s: string): void {
    const len = Buffer.byteLength(s, 'utf8');
    this.head(3, len);
    this.room(len);
    this.n += this.buf.write(s, this.n, 'utf8');
  }

  hex(h: string): void {
    const len = h.length / 2;
    this.head(2, len);
    this.room(len);
    this.n += this.buf.write(h, this.n, 'hex');
  }

  done(): Buffer {
    return this.buf.subarray(0, this.n);
  }

  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(bigger, 0, 0, this.n);
    this.buf = bigger;
  }
}
