// The keyset ids a serialized token names, without asking its mint: what nutshell's
// Token.keysets gives routstr's recieve_token ("Multiple keysets per token currently not
// supported" when there is more than one). cashuA carries ids in its JSON proofs; cashuB groups
// proofs per keyset in CBOR (t: [{i: <id bytes>, p: [...]}]), short v2 ids included, so a tiny
// CBOR reader is enough and no keyset list is needed.

/** Distinct keyset ids of a cashuA or cashuB token (hex, as written in the token); throws on a malformed token. */
export function tokenKeysetIds(token: string): string[] {
  if (token.startsWith('cashuA')) {
    const json = JSON.parse(Buffer.from(token.slice(6), 'base64url').toString('utf8')) as { token: { proofs: { id: string }[] }[] };
    return [...new Set(json.token.flatMap((t) => t.proofs.map((p) => p.id)))];
  }
  if (token.startsWith('cashuB')) {
    const decoded = readCbor(Buffer.from(token.slice(6), 'base64url'), { at: 0 }) as { t?: { i?: Uint8Array }[] };
    if (!decoded || !Array.isArray(decoded.t)) throw new Error('cashuB token without t');
    return [...new Set(decoded.t.map((g) => Buffer.from(g.i ?? new Uint8Array()).toString('hex')))];
  }
  throw new Error('not a Cashu token');
}

// CBOR (RFC 8949) major types 0-5 and simple values; enough for Cashu V4 tokens.
function readCbor(buf: Buffer, pos: { at: number }): unknown {
  const head = buf[pos.at++];
  if (head === undefined) throw new Error('truncated CBOR');
  const major = head >> 5;
  const info = head & 31;
  if (major === 7) {
    if (info === 20) return false;
    if (info === 21) return true;
    if (info === 22 || info === 23) return null;
    throw new Error('unsupported CBOR simple value');
  }
  const length = readLength(buf, pos, info);
  switch (major) {
    case 0:
      return length;
    case 1:
      return -1 - length;
    case 2:
      return new Uint8Array(buf.subarray(pos.at, (pos.at += length)));
    case 3:
      return buf.subarray(pos.at, (pos.at += length)).toString('utf8');
    case 4:
      return Array.from({ length }, () => readCbor(buf, pos));
    case 5: {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < length; i++) {
        const key = readCbor(buf, pos);
        out[String(key)] = readCbor(buf, pos);
      }
      return out;
    }
    default:
      throw new Error('unsupported CBOR major type');
  }
}

function readLength(buf: Buffer, pos: { at: number }, info: number): number {
  if (info < 24) return info;
  const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
  if (!size || pos.at + size > buf.length) throw new Error('bad CBOR length');
  let n = 0;
  for (let i = 0; i < size; i++) n = n * 256 + buf[pos.at + i];
  pos.at += size;
  return n;
}
