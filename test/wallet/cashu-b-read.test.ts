// wallet/cashu-b-read.ts against cashu-ts 4.8.0: the same mint, unit and amount as getTokenMetadata
// (amount.toNumber()) for valid tokens, and the same outcome, value or error, for hostile ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { Amount, getEncodedToken, getTokenMetadata, type Proof, type Token } from '@cashu/cashu-ts';
import { tokenMetadata, tokenMetadataDirect } from '../../wallet/cashu-b-read.ts';
import { assertProperty } from '../property.ts';

type Outcome = { ok: { mint: string; unit: string; amount: number } } | { error: string };

function outcome(read: () => { mint: string; unit: string; amount: number }): Outcome {
  try {
    const { mint, unit, amount } = read();
    return { ok: { mint, unit, amount } };
  } catch (e) {
    return { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

/** What the change queue read before wallet/cashu-b-read.ts. */
function theirs(token: string): Outcome {
  return outcome(() => {
    const meta = getTokenMetadata(token);
    return { mint: meta.mint, unit: meta.unit, amount: meta.amount.toNumber() };
  });
}

const ours = (token: string): Outcome => outcome(() => tokenMetadata(token));

/** Ours is cashu-ts's outcome; when the fast path answered, cashu-ts accepted the token and said the same. */
function assertSame(token: string, label: string): boolean {
  const expected = theirs(token);
  assert.deepEqual(ours(token), expected, label);
  const direct = tokenMetadataDirect(token);
  if (direct !== null) assert.deepEqual({ ok: direct }, expected, `${label}: the fast path's answer`);
  return direct !== null;
}

const hexOf = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const hexArb = (bytes: number) => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map(hexOf);
const point = fc.tuple(fc.constantFrom('02', '03'), hexArb(32)).map(([p, x]) => p + x);

// Keyset ids of both versions: 00 (8 bytes) and 01 (33 bytes, sent as its 8-byte short id).
const keysetId = fc.oneof(hexArb(7).map((h) => '00' + h), hexArb(32).map((h) => '01' + h));

// Mostly what a node sends (powers of two), some anything up to 2^53 - 1, a few past it (to 2^64 - 1).
const amountArb: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 20, arbitrary: fc.nat({ max: 20 }).map((k) => 2n ** BigInt(k)) },
  { weight: 3, arbitrary: fc.nat().map(BigInt) },
  { weight: 1, arbitrary: fc.maxSafeNat().map(BigInt) },
  { weight: 1, arbitrary: fc.constantFrom(0n, 23n, 24n, 255n, 256n, 65_535n, 65_536n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 52n, 2n ** 53n - 1n) },
  { weight: 1, arbitrary: fc.constantFrom(2n ** 53n, 2n ** 60n, 2n ** 64n - 1n) },
);

const secretArb = fc.oneof(
  hexArb(32),
  fc.tuple(hexArb(32), point).map(([nonce, data]) => JSON.stringify(['P2PK', { nonce, data, tags: [['sigflag', 'SIG_INPUTS']] }])),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
);

const proofArb = (ids: string[]): fc.Arbitrary<Proof> =>
  fc.record({
    id: fc.constantFrom(...ids),
    amount: amountArb.map((a) => Amount.from(a)),
    secret: secretArb,
    C: point,
    dleq: fc.option(fc.record({ e: hexArb(32), s: hexArb(32), r: hexArb(32) }), { nil: undefined }),
    witness: fc.option(fc.oneof(fc.array(hexArb(64), { minLength: 1, maxLength: 2 }).map((signatures) => JSON.stringify({ signatures })), hexArb(32).map((preimage) => ({ preimage, signatures: [] }))), { nil: undefined }),
    p2pk_e: fc.option(point, { nil: undefined }),
  }, { requiredKeys: ['id', 'amount', 'secret', 'C'] });

const MINTS = ['https://mint.minibits.cash/Bitcoin', 'http://127.0.0.1:3338', 'https://münze.example/ünïcode/😀', `https://${'a'.repeat(60)}.example/${'path/'.repeat(60)}`];

/** A token as a node sends change: one or more keysets, proofs with or without DLEQ, witness, p2pk_e, maybe a memo. */
const tokenArb: fc.Arbitrary<Token> = fc
  .record({
    mint: fc.oneof(fc.constantFrom(...MINTS), fc.string({ unit: 'grapheme', maxLength: 30 })),
    unit: fc.constantFrom('sat', 'msat', 'usd', ''),
    memo: fc.option(fc.string({ unit: 'grapheme', maxLength: 30 }), { nil: undefined }),
    ids: fc.array(keysetId, { minLength: 1, maxLength: 4 }),
  })
  .chain(({ ids, ...rest }) => fc.array(proofArb(ids), { minLength: 0, maxLength: 8 }).map((proofs) => ({ ...rest, proofs })));

const sum = (amounts: bigint[]) => amounts.reduce((a, b) => a + b, 0n);

test('valid tokens read as cashu-ts reads them, and the fast path reads every one whose total fits a safe integer', () => {
  let direct = 0;
  let beyond = 0;
  assertProperty(
    fc.property(tokenArb, (token) => {
      const encoded = getEncodedToken(token);
      const took = assertSame(encoded, encoded.slice(0, 80));
      const total = sum(token.proofs.map((p) => p.amount.toBigInt()));
      assert.equal(took, total <= BigInt(Number.MAX_SAFE_INTEGER), `fast path taken iff the total ${total} is safe`);
      if (took) direct++;
      else beyond++;
    }),
    { seed: 4211, numRuns: 1500 },
  );
  assert.ok(direct > 1000 && beyond > 100, `${direct} read directly, ${beyond} with totals past 2^53 - 1 left to cashu-ts`);
});

// A small CBOR writer for forms cashu-ts's encoder never makes (other key orders, long heads, other
// types), built as a tree whose maps keep their entries in order (duplicates allowed).
type Cbor = number | bigint | string | Uint8Array | Cbor[] | CborMap | { raw: number[] };
interface CborMap { map: [Cbor, Cbor][] }

/** A head with the shortest argument form, or `extra` forms longer. */
function head(major: number, n: number | bigint, extra = 0): number[] {
  const v = BigInt(n);
  const form = Math.min(4, (v < 24n ? 0 : v < 0x100n ? 1 : v < 0x10000n ? 2 : v < 0x1_0000_0000n ? 3 : 4) + extra);
  if (form === 0) return [(major << 5) | Number(v)];
  const width = [0, 1, 2, 4, 8][form];
  const out = [(major << 5) | (23 + form)];
  for (let i = width - 1; i >= 0; i--) out.push(Number((v >> BigInt(8 * i)) & 0xffn));
  return out;
}

function cbor(v: Cbor, extra: () => number = () => 0): number[] {
  if (typeof v === 'number' || typeof v === 'bigint') return head(0, v, extra());
  if (typeof v === 'string') {
    const b = [...Buffer.from(v, 'utf8')];
    return [...head(3, b.length, extra()), ...b];
  }
  if (v instanceof Uint8Array) return [...head(2, v.length, extra()), ...v];
  if (Array.isArray(v)) return [...head(4, v.length, extra()), ...v.flatMap((x) => cbor(x, extra))];
  if ('raw' in v) return v.raw;
  return [...head(5, v.map.length, extra()), ...v.map.flatMap(([k, x]) => [...cbor(k, extra), ...cbor(x, extra)])];
}

const b64 = (bytes: number[]) => 'cashuB' + Buffer.from(bytes).toString('base64url');
const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

/** The tree cashu-ts's getEncodedToken writes for this token (checked below to be byte for byte). */
function tree(token: Token): CborMap {
  const groups = new Map<string, Proof[]>();
  for (const p of token.proofs) {
    const short = p.id.slice(0, 16);
    groups.set(short, [...(groups.get(short) ?? []), p]);
  }
  const top: CborMap = {
    map: [['m', token.mint], ['u', token.unit || 'sat'], ['t', [...groups].map(([id, proofs]): Cbor => ({
      map: [['i', hex(id)], ['p', proofs.map((p): Cbor => {
        const entries: [Cbor, Cbor][] = [['a', p.amount.toBigInt()], ['s', p.secret], ['c', hex(p.C)]];
        if (p.dleq) entries.push(['d', { map: [['e', hex(p.dleq.e)], ['s', hex(p.dleq.s)], ['r', hex(p.dleq.r!)]] }]);
        if (p.p2pk_e) entries.push(['pe', hex(p.p2pk_e)]);
        if (p.witness) entries.push(['w', JSON.stringify(p.witness)]);
        return { map: entries };
      })]],
    }))]],
  };
  if (token.memo) top.map.push(['d', token.memo]);
  return top;
}

test('the test CBOR writer reproduces cashu-ts\'s token bytes (so the variants below differ only where meant)', () => {
  assertProperty(fc.property(tokenArb, (token) => assert.equal(b64(cbor(tree(token))), getEncodedToken(token))), { seed: 17, numRuns: 200 });
});

/** Every map entry and array item in the tree, to pick one to change. */
function slots(root: Cbor): { parent: Cbor[] | [Cbor, Cbor][]; index: number; inMap: boolean }[] {
  const out: { parent: Cbor[] | [Cbor, Cbor][]; index: number; inMap: boolean }[] = [];
  const stack: Cbor[] = [root];
  while (stack.length) {
    const v = stack.pop()!;
    if (Array.isArray(v)) v.forEach((x, index) => (out.push({ parent: v, index, inMap: false }), stack.push(x)));
    else if (typeof v === 'object' && !(v instanceof Uint8Array) && 'map' in v) v.map.forEach((e, index) => (out.push({ parent: v.map, index, inMap: true }), stack.push(e[1])));
  }
  return out;
}

// Values of other types and forms: what a hostile or unusual encoder could put anywhere.
const OTHERS: Cbor[] = [
  { raw: [0xf6] }, { raw: [0xf4] }, { raw: [0xf5] }, { raw: [0xf7] }, { raw: [0xfb, 0x40, 0x14, 0, 0, 0, 0, 0, 0] }, { raw: [0xf9, 0x3c, 0x00] },
  { raw: [0x20] }, { raw: [0x38, 0xff] }, '5', '', '0x10', 'sat', new Uint8Array(0), hex('00ad268c4d1f5826'), [], { map: [] }, 0, 1, 2 ** 40,
  { raw: [0xc0, 0x61, 0x61] }, { raw: [0xd8, 0x18, 0x01] }, { raw: [0x9f, 0x01, 0xff] }, { raw: [0xbf, 0xff] }, { raw: [0x7f, 0x61, 0x61, 0xff] },
  { raw: [0x1c] }, { raw: [0xff] }, { raw: [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] }, { raw: [0x9b, 0, 0, 0, 1, 0, 0, 0, 0] },
  { raw: [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] }, { raw: [0x1b, 0x00, 0x20, 0, 0, 0, 0, 0, 0] }, { raw: [0x1b, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] },
  '\uFEFFhttps://bom.example', 'ünit', { raw: [0x62, 0xef, 0xbb] }, { raw: [0x63, 0xef, 0xbb, 0xbf] }, { raw: [0x61, 0xff] },
];
const KEYS: Cbor[] = ['m', 'u', 't', 'd', 'i', 'p', 'a', 's', 'c', 'e', 'r', 'w', 'pe', 'x', '', 'M', 'mm', '\uFEFFm', { raw: [0x62, 0x00, 0x61] }, { raw: [0x78, 0x01, 0x61] }, 1, { raw: [0x41, 0x61] }, '__proto__'];

/** One structural change at a slot: another value, another key, the entry dropped, repeated or moved, or another entry beside it. */
function mutateTree(root: CborMap, ops: [number, number, number][]): Cbor {
  const copy = structuredClone(root) as CborMap;
  for (const [where, kind, what] of ops) {
    const all = slots(copy);
    if (all.length === 0) break;
    const { parent, index, inMap } = all[where % all.length];
    const value = structuredClone(OTHERS[what % OTHERS.length]);
    const k = structuredClone(KEYS[what % KEYS.length]);
    switch (kind % 6) {
      case 0: if (inMap) (parent as [Cbor, Cbor][])[index][1] = value; else (parent as Cbor[])[index] = value; break;
      case 1: if (inMap) (parent as [Cbor, Cbor][])[index][0] = k; break;
      case 2: parent.splice(index, 1); break;
      case 3: (parent as Cbor[]).splice(index, 0, structuredClone(parent[index]) as Cbor); break;
      case 4: if (inMap) (parent as [Cbor, Cbor][]).splice(what % (parent.length + 1), 0, [k, value]); else (parent as Cbor[]).push(value); break;
      case 5: { const [e] = parent.splice(index, 1); parent.splice(what % (parent.length + 1), 0, e as never); break; }
    }
  }
  return copy;
}

/** A byte-level change of the CBOR: a byte set, a bit flipped, a cut, bytes appended, inserted or removed. */
function mutateBytes(bytes: number[], [where, kind, what]: [number, number, number]): number[] {
  const out = [...bytes];
  const i = out.length ? where % out.length : 0;
  switch (kind % 6) {
    case 0: out[i] = what & 0xff; break;
    case 1: out[i] ^= 1 << (what % 8); break;
    case 2: return out.slice(0, i);
    case 3: return [...out, ...Array.from({ length: 1 + (what % 9) }, (_, j) => (what * 31 + j * 7) & 0xff)];
    case 4: out.splice(i, 0, what & 0xff); break;
    case 5: out.splice(i, 1 + (what % 4)); break;
  }
  return out;
}

/** A change of the token's text: a character inserted or replaced, a cut, another prefix. */
function mutateText(token: string, [where, kind, what]: [number, number, number]): string {
  const i = where % (token.length + 1);
  const chars = ['=', '+', '/', ' ', '\n', '.', 'A', '-', '_', '%', 'é'];
  switch (kind % 4) {
    case 0: return token.slice(0, i) + chars[what % chars.length] + token.slice(i);
    case 1: return token.slice(0, i) + chars[what % chars.length] + token.slice(i + 1);
    case 2: return token.slice(0, i);
    default: {
      // Another prefix before the token, or a bare 'B...' (cashu-ts takes all of these).
      const [before, cut] = ([['cashu:', 0], ['web+cashu://', 0], ['cashu://', 0], [' ', 0], ['cashu', 0], ['', 'cashu'.length]] as const)[what % 6];
      return before + token.slice(cut);
    }
  }
}

const op = fc.tuple(fc.nat(), fc.nat(), fc.nat());

test('hostile tokens: every mutation reads as cashu-ts reads it, the same metadata or the same error', () => {
  const counts = { tree: 0, bytes: 0, text: 0, random: 0, direct: 0 };
  const hostile = fc.oneof(
    { weight: 3, arbitrary: fc.tuple(tokenArb, fc.array(op, { maxLength: 3 }), fc.array(fc.nat({ max: 2 }), { maxLength: 40 }))
      .map(([token, ops, widths]) => {
        counts.tree++;
        let w = 0;
        return b64(cbor(mutateTree(tree(token), ops), () => widths[w++ % Math.max(1, widths.length)] ?? 0));
      }) },
    { weight: 2, arbitrary: fc.tuple(tokenArb, fc.array(op, { minLength: 1, maxLength: 3 })).map(([token, ops]) => {
      counts.bytes++;
      return b64(ops.reduce(mutateBytes, cbor(tree(token))));
    }) },
    fc.tuple(tokenArb, op).map(([token, o]) => {
      counts.text++;
      return mutateText(getEncodedToken(token), o);
    }),
    fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), maxLength: 400 }).map((s) => {
      counts.random++;
      return 'cashuB' + s;
    }),
    fc.uint8Array({ maxLength: 300 }).map((b) => {
      counts.random++;
      return b64([0xa3, ...b]);
    }),
  );
  assertProperty(
    fc.property(hostile, (token) => {
      if (assertSame(token, token.slice(0, 120))) counts.direct++;
    }),
    { seed: 8080, numRuns: 6000 },
  );
  // The property is not vacuous: a fair share of mutated tokens is still read by the fast path.
  assert.ok(counts.direct > 700 && counts.tree > 2000 && counts.bytes > 1500 && counts.text > 500, JSON.stringify(counts));
});

/** A token of these top-level entries. */
const top = (...entries: [Cbor, Cbor][]): string => b64(cbor({ map: entries }));
const PROOF: CborMap = { map: [['a', 8], ['s', 'secret'], ['c', hex('02' + 'ab'.repeat(32))]] };
const GROUP = (...proofs: Cbor[]): Cbor => ({ map: [['i', hex('00ad268c4d1f5826')], ['p', proofs]] });
const withProof = (...entries: [Cbor, Cbor][]) => top(['m', 'https://m.example'], ['u', 'sat'], ['t', [GROUP({ map: [...PROOF.map, ...entries] })]]);

test('forms other encoders may send are read directly and agree: no or empty unit, other key orders, long heads, BOM and non-ASCII text', () => {
  const cases: [string, string][] = [
    ['no unit: sat', top(['m', 'https://m.example'], ['t', [GROUP(PROOF)]])],
    ['empty unit: sat', top(['m', 'https://m.example'], ['u', ''], ['t', [GROUP(PROOF)]])],
    ['keys in another order', top(['t', [{ map: [['p', [{ map: [['c', hex('02')], ['a', 3], ['s', '']] }]], ['i', hex('01ab')]] }]], ['d', 'memo'], ['u', 'msat'], ['m', 'x'])],
    ['empty mint, no proofs', top(['m', ''], ['t', []])],
    ['a group with no proofs', top(['m', 'https://m.example'], ['t', [GROUP(), GROUP(PROOF)]])],
    ['every head in its longest form', b64(cbor({ map: [['m', 'https://m.example'], ['t', [GROUP(PROOF, PROOF)]]] }, () => 4))],
    ['a mint starting with a BOM (cashu-ts drops it)', top(['m', '\uFEFFhttps://m.example'], ['t', [GROUP(PROOF)]])],
    ['non-ASCII and invalid UTF-8 in mint and unit', top(['m', { raw: [0x65, 0x68, 0xc3, 0xbc, 0xff, 0x80] }], ['u', 'ünit'], ['t', [GROUP(PROOF)]])],
    ['DLEQ, p2pk_e and witness', withProof(['d', { map: [['r', hex('01')], ['e', hex('02')], ['s', hex('')]] }], ['pe', new Uint8Array(0)], ['w', '{"signatures":[]}'])],
    ['amounts summing to exactly 2^53 - 1', top(['m', 'm'], ['t', [GROUP({ map: [['a', 2 ** 52], ['s', ''], ['c', hex('')]] }, { map: [['a', 2 ** 52 - 1], ['s', ''], ['c', hex('')]] })]])],
    ['amount 2^53 - 1 in the 8-byte form', top(['m', 'm'], ['t', [GROUP({ map: [['a', { raw: [0x1b, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] }], ['s', ''], ['c', hex('')]] })]])],
  ];
  for (const [name, token] of cases) assert.ok(assertSame(token, name), `${name}: read directly`);
  const cashuTs = new Map(cases);
  assert.deepEqual(tokenMetadata(cashuTs.get('no unit: sat')!), { mint: 'https://m.example', unit: 'sat', amount: 8 });
  assert.deepEqual(tokenMetadata(cashuTs.get('empty unit: sat')!), { mint: 'https://m.example', unit: 'sat', amount: 8 });
  assert.equal(tokenMetadata(cashuTs.get('a mint starting with a BOM (cashu-ts drops it)')!).mint, 'https://m.example');
  assert.equal(tokenMetadata(cashuTs.get('non-ASCII and invalid UTF-8 in mint and unit')!).mint, 'hü\uFFFD\uFFFD');
});

test('inputs left to cashu-ts give its outcome: other prefixes, JSON tokens, odd base64, other types, unknown or repeated keys, trailing bytes, huge totals', () => {
  const valid = getEncodedToken({ mint: 'https://m.example', unit: 'sat', proofs: [{ id: '00ad268c4d1f5826', amount: Amount.from(8), secret: 's', C: '02' + 'ab'.repeat(32) }] });
  const body = valid.slice('cashuB'.length);
  const plus = 'cashuB' + Buffer.from(cbor(tree({ mint: '~~~~~~~~~', unit: 'sat', proofs: [] }))).toString('base64');
  assert.match(plus, /\+/);
  const cashuA = 'cashuA' + Buffer.from(JSON.stringify({ token: [{ mint: 'https://m.example', proofs: [{ id: '009a1f293253e41e', amount: 8, secret: 's', C: '02' + 'ab'.repeat(32) }] }], unit: 'sat' })).toString('base64url');
  const cases: [string, string][] = [
    ['a cashuA JSON token', cashuA],
    ['cashu: prefix', 'cashu:' + valid],
    ['web+cashu:// prefix', 'web+cashu://' + valid],
    ['a bare B', 'B' + body],
    ['leading space', ' ' + valid],
    ['trailing newline', valid + '\n'],
    ['base64 padding', valid + '=='],
    ['standard base64 characters (+ and /)', plus],
    ['a lone last base64 character', valid + 'A'.repeat((5 - (body.length % 4)) % 4)],
    ['empty', 'cashuB'],
    ['trailing bytes', b64([...Buffer.from(body, 'base64url'), 0x00])],
    ['a tagged amount', top(['m', 'm'], ['t', [GROUP({ map: [['a', { raw: [0xc2, 0x41, 0x08] }], ['s', ''], ['c', hex('')]] })]])],
    ['a text amount cashu-ts takes', top(['m', 'm'], ['t', [GROUP({ map: [['a', '5'], ['s', ''], ['c', hex('')]] })]])],
    ['a float amount', top(['m', 'm'], ['t', [GROUP({ map: [['a', { raw: [0xfb, 0x40, 0x14, 0, 0, 0, 0, 0, 0] }], ['s', ''], ['c', hex('')]] })]])],
    ['a negative amount', top(['m', 'm'], ['t', [GROUP({ map: [['a', { raw: [0x20] }], ['s', ''], ['c', hex('')]] })]])],
    ['null p2pk_e', withProof(['pe', { raw: [0xf6] }])],
    ['p2pk_e as text', withProof(['pe', '02ab'])],
    ['an indefinite-length proof list', top(['m', 'm'], ['t', [{ map: [['i', hex('00')], ['p', { raw: [0x9f, ...cbor(PROOF), 0xff] }]] }]])],
    ['mint given twice', top(['m', 'https://a.example'], ['m', 'https://b.example'], ['t', []])],
    ['an unknown top-level key', top(['m', 'm'], ['x', 1], ['t', []])],
    ['an unknown proof key', withProof(['z', 1])],
    ['no secret', top(['m', 'm'], ['t', [GROUP({ map: [['a', 1], ['c', hex('')]] })]])],
    ['no mint', top(['u', 'sat'], ['t', [GROUP(PROOF)]])],
    ['no keyset id in an empty group', top(['m', 'm'], ['t', [{ map: [['p', []]] }]])],
    ['a total past 2^53 - 1', top(['m', 'm'], ['t', [GROUP({ map: [['a', 2 ** 53 - 1], ['s', ''], ['c', hex('')]] }, PROOF)]])],
    ['an amount of 2^64 - 1', top(['m', 'm'], ['t', [GROUP({ map: [['a', 2n ** 64n - 1n], ['s', ''], ['c', hex('')]] })]])],
    ['a total past 2^64 - 1', top(['m', 'm'], ['t', [GROUP({ map: [['a', 2n ** 64n - 1n], ['s', ''], ['c', hex('')]] }, { map: [['a', 2n ** 64n - 1n], ['s', ''], ['c', hex('')]] })]])],
    ['a string longer than the token', top(['m', { raw: [0x7b, 0, 0, 0, 1, 0, 0, 0, 0, 0x61] }], ['t', []])],
    ['a proof list claiming 2^64 - 1 items', top(['m', 'm'], ['t', [{ map: [['i', hex('00')], ['p', { raw: [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] }]] }]])],
    ['truncated', valid.slice(0, valid.length - 7)],
  ];
  for (const [name, token] of cases) {
    assert.equal(tokenMetadataDirect(token), null, `${name}: left to cashu-ts`);
    assert.deepEqual(ours(token), theirs(token), name);
  }
});

test('node base64url decoding of the accepted alphabet gives the bytes cashu-ts decodes', () => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  assertProperty(
    fc.property(fc.string({ unit: fc.constantFrom(...alphabet), maxLength: 200 }).filter((s) => s.length % 4 !== 1), (s) => {
      // cashu-ts 4.8.0 (Bytes.fromBase64): '-' -> '+', '_' -> '/', '=' padding, Buffer's base64.
      let std = s.replace(/-/g, '+').replace(/_/g, '/');
      while (std.length % 4) std += '=';
      const into = Buffer.alloc(s.length);
      const n = into.write(s, 0, 'base64url');
      assert.deepEqual(into.subarray(0, n), Buffer.from(std, 'base64'));
    }),
    { seed: 64, numRuns: 2000 },
  );
});

test('huge and deep hostile tokens are read in bounded time, with the same outcome as cashu-ts', () => {
  const many = getEncodedToken({ mint: 'https://m.example', unit: 'sat', proofs: Array.from({ length: 1500 }, (_, i) => ({ id: '00ad268c4d1f5826', amount: Amount.from(1 + (i % 64)), secret: 'ab'.repeat(32), C: '02' + 'cd'.repeat(32), dleq: { e: 'ab'.repeat(32), s: 'ab'.repeat(32), r: 'ab'.repeat(32) } })) });
  const cases: [string, string][] = [
    ['a 200,000-character run of A', `cashuB${'A'.repeat(200_000)}`],
    ['a valid token of 1500 proofs', many],
    ['that token with one byte cut off the end', b64([...Buffer.from(many.slice(6), 'base64url')].slice(0, -1))],
    ['arrays nested 100,000 deep', b64([0xa1, 0x61, 0x74, ...new Array(100_000).fill(0x81), 0x00])],
    ['a map of 60,000 unknown keys', b64([0xb9, 0xea, 0x60, ...new Array(60_000).fill([0x61, 0x78, 0x00]).flat()])],
  ];
  assert.ok(many.length > 200_000, `${many.length} characters`);
  for (const [name, token] of cases) {
    const started = performance.now();
    const direct = tokenMetadataDirect(token);
    const ms = performance.now() - started;
    assert.ok(ms < 100, `${name}: ${ms.toFixed(1)} ms`);
    assert.deepEqual(ours(token), theirs(token), name);
    if (name.startsWith('a valid')) assert.ok(direct !== null, `${name}: read directly`);
  }
});
