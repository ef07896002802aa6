// wallet/cashu-b.ts against cashu-ts 4.8.0: the same cashuB string, byte for byte, for the tokens
// we make (and random ones well beyond them), and a string cashu-ts decodes back to the same proofs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Amount, getDecodedToken, getEncodedToken, type Proof } from '@cashu/cashu-ts';
import { encodeCashuB, encodeCashuBDirect, type CashuBProof, type CashuBToken } from '../../wallet/cashu-b.ts';
import type { StoredProof } from '../../wallet/store.ts';
import { rng } from '../rng.ts';

/** A proof as the store holds it: with its DLEQ, which must not travel. */
type Input = CashuBProof & { dleq: StoredProof['dleq'] };

const hexOf = (rand: () => number, bytes: number) => Array.from({ length: bytes }, () => Math.floor(rand() * 256).toString(16).padStart(2, '0')).join('');
const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
const point = (rand: () => number) => pick(rand, ['02', '03']) + hexOf(rand, 32);

const MINTS = [
  'https://mint.minibits.cash/Bitcoin',
  'http://127.0.0.1:3338',
  'https://münze.example/ünïcode/😀/ledger',
  `https://${'a'.repeat(60)}.example/${'path/'.repeat(60)}`, // over 255 bytes: a 2-byte length head
];

/** What the token carries for a proof (the reference encoding goes through cashu-ts's own shape). */
function toProof(p: Input): Proof {
  const proof: Proof = { id: p.keysetId, amount: Amount.from(p.amount), secret: p.secret, C: p.C };
  if (p.dleq) proof.dleq = p.dleq;
  if (p.witness) proof.witness = p.witness;
  if (p.p2pkE) proof.p2pk_e = p.p2pkE;
  return proof;
}

/** What cashu-ts makes of the token: the string take.ts sent before wallet/cashu-b.ts. */
const reference = (t: CashuBToken & { proofs: readonly Input[] }) =>
  getEncodedToken({ mint: t.mint, unit: t.unit, proofs: t.proofs.map(toProof) }, { removeDleq: true });

function randomAmount(rand: () => number): number {
  const r = rand();
  if (r < 0.6) return 2 ** Math.floor(rand() * 41); // 1 .. 2^40
  if (r < 0.9) return 2 * Math.floor(rand() * 2 ** 20) + 1; // odd
  return Math.floor(rand() * 2 ** 45); // any, some >= 2^32
}

function randomSecret(rand: () => number): string {
  const r = rand();
  if (r < 0.6) return hexOf(rand, 32);
  const tags = rand() < 0.5 ? [] : [['sigflag', 'SIG_INPUTS'], ['locktime', String(1_700_000_000 + Math.floor(rand() * 1e6))], ['refund', point(rand)]];
  if (r < 0.9) return JSON.stringify(['P2PK', { nonce: hexOf(rand, 32), data: point(rand), tags }]);
  return `secret ✓ ${'ü'.repeat(Math.floor(rand() * 200))}`;
}

function randomWitness(rand: () => number): Proof['witness'] | null {
  const r = rand();
  if (r < 0.5) return null;
  const signatures = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => hexOf(rand, 64));
  if (r < 0.7) return JSON.stringify({ signatures }); // as NUT-00 JSON carries it: a string
  if (r < 0.85) return { signatures };
  return { preimage: hexOf(rand, 32), signatures };
}

function randomToken(seed: number): { token: CashuBToken & { proofs: Input[] }; fullIds: string[] } {
  const rand = rng(seed);
  // Several keysets a token, both id versions: 00 (8 bytes) and 01 (33 bytes, sent as its 8-byte short id).
  const keysets = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => (rand() < 0.5 ? '00' + hexOf(rand, 7) : '01' + hexOf(rand, 32)));
  const proofs: Input[] = Array.from({ length: 1 + Math.floor(rand() * 20) }, () => ({
    keysetId: pick(rand, keysets),
    amount: randomAmount(rand),
    secret: randomSecret(rand),
    C: point(rand),
    dleq: rand() < 0.7 ? { e: hexOf(rand, 32), s: hexOf(rand, 32), r: hexOf(rand, 32) } : null,
    witness: randomWitness(rand),
    p2pkE: rand() < 0.3 ? point(rand) : null,
  }));
  return { token: { mint: pick(rand, MINTS), unit: pick(rand, ['sat', 'msat']), proofs }, fullIds: keysets };
}

/** A call's string, or its error's class and message. */
function outcome(encode: () => string): { ok: string } | { error: string } {
  try {
    return { ok: encode() };
  } catch (e) {
    return { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

type Decoded = Pick<Proof, 'id' | 'secret' | 'C' | 'dleq' | 'p2pk_e' | 'witness'> & { amount: Amount | bigint };

/** Proofs in a comparable form, by secret (the token groups them by keyset). */
function comparable(proofs: readonly Decoded[]) {
  return proofs
    .map((p) => ({ id: p.id, amount: Amount.from(p.amount).toBigInt(), secret: p.secret, C: p.C, dleq: p.dleq, p2pk_e: p.p2pk_e, witness: p.witness }))
    .sort((a, b) => (a.secret < b.secret ? -1 : a.secret > b.secret ? 1 : 0));
}

test('random tokens (1-20 proofs, both keyset id versions, P2PK secrets, witnesses, DLEQs) encode to exactly cashu-ts\'s string', () => {
  for (let seed = 1; seed <= 600; seed++) {
    const { token } = randomToken(seed);
    const direct = encodeCashuBDirect(token);
    assert.ok(direct !== null, `seed ${seed}: the direct encoder took it`);
    assert.equal(direct, reference(token), `seed ${seed}`);
    assert.equal(encodeCashuB(token), direct, `seed ${seed}`);
  }
});

test('cashu-ts decodes our token back to the same proofs (short 01 ids resolved against the keysets), without their DLEQ', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const { token, fullIds } = randomToken(seed);
    const decoded = getDecodedToken(encodeCashuB(token), fullIds.filter((id) => id.startsWith('01')));
    assert.equal(decoded.mint, token.mint);
    assert.equal(decoded.unit, token.unit);
    const expected: Decoded[] = token.proofs.map((p) => ({
      id: p.keysetId, amount: BigInt(p.amount), secret: p.secret, C: p.C, dleq: undefined,
      // cashu-ts carries the witness as JSON text and hands that text back.
      p2pk_e: p.p2pkE ?? undefined, witness: p.witness ? JSON.stringify(p.witness) : undefined,
    }));
    assert.deepEqual(comparable(decoded.proofs), comparable(expected), `seed ${seed}`);
  }
});

test('a token of old-style 00 ids decodes without any keyset list', () => {
  const { token } = randomToken(7);
  const old = { ...token, proofs: token.proofs.map((p) => ({ ...p, keysetId: '009a1f293253e41e' })) };
  const decoded = getDecodedToken(encodeCashuB(old), []);
  assert.deepEqual(decoded.proofs.map((p) => [p.id, p.secret]), old.proofs.map((p) => ['009a1f293253e41e', p.secret]));
});

test('edge forms cashu-ts also accepts encode identically: long arrays, large amounts, odd strings, uppercase hex, shared short ids', () => {
  const rand = rng(99);
  const base = (over: Partial<Input>): Input => ({ keysetId: '00ad268c4d1f5826', amount: 8, secret: hexOf(rand, 32), C: point(rand), dleq: null, witness: null, p2pkE: null, ...over });
  const cases: { name: string; token: CashuBToken & { proofs: Input[] } }[] = [
    { name: '300 proofs in one group (2-byte array head)', token: { mint: MINTS[0], unit: 'sat', proofs: Array.from({ length: 300 }, (_, i) => base({ amount: i })) } },
    { name: '24 proofs (1-byte array head)', token: { mint: MINTS[0], unit: 'sat', proofs: Array.from({ length: 24 }, () => base({})) } },
    { name: 'amount boundaries', token: { mint: MINTS[1], unit: 'sat', proofs: [0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1].map((amount) => base({ amount })) } },
    { name: 'empty unit is sent as sat', token: { mint: MINTS[1], unit: '', proofs: [base({})] } },
    { name: 'lone surrogates and emoji in mint and secret', token: { mint: 'https://m.example/\uD800x😀', unit: 'sat', proofs: [base({ secret: '\uDC00a\uD83D' }), base({ secret: '' })] } },
    { name: 'a secret over 64 KiB (4-byte length head)', token: { mint: MINTS[0], unit: 'sat', proofs: [base({ secret: 'ab'.repeat(40_000) })] } },
    { name: 'uppercase hex in ids, C and p2pk_e', token: { mint: MINTS[0], unit: 'sat', proofs: [base({ keysetId: '01ABCDEF' + 'ab'.repeat(29), C: '02' + 'AB'.repeat(32), p2pkE: '03' + 'Cd'.repeat(32) }), base({ keysetId: '01abcdef' + 'ab'.repeat(29) })] } },
    { name: 'two 01 ids with the same short id share a group', token: { mint: MINTS[0], unit: 'sat', proofs: [base({ keysetId: '01' + '11'.repeat(7) + 'aa'.repeat(25) }), base({ keysetId: '009a1f293253e41e' }), base({ keysetId: '01' + '11'.repeat(7) + 'bb'.repeat(25) })] } },
    { name: 'short and empty-bytes forms cashu-ts accepts', token: { mint: MINTS[0], unit: 'sat', proofs: [base({ keysetId: '00ab', C: '' }), base({ keysetId: '0123', witness: '' as unknown as Input['witness'], p2pkE: '' })] } },
  ];
  for (const c of cases) {
    const direct = encodeCashuBDirect(c.token);
    assert.ok(direct !== null, `${c.name}: the direct encoder took it`);
    assert.equal(direct, reference(c.token), c.name);
  }
});

test('inputs outside the direct encoder go to cashu-ts: the same string, or the same error', () => {
  const rand = rng(5);
  const base = (over: Partial<Input>): Input => ({ keysetId: '00ad268c4d1f5826', amount: 8, secret: hexOf(rand, 32), C: point(rand), dleq: null, witness: null, p2pkE: null, ...over });
  const cases: { name: string; proofs: Input[] }[] = [
    { name: 'legacy base64 keyset id', proofs: [base({ keysetId: 'I2yN+iRYfkzT' })] },
    { name: 'hex id not starting with 0', proofs: [base({ keysetId: 'ab'.repeat(8) })] },
    { name: 'odd-length keyset id', proofs: [base({ keysetId: '00a' })] },
    { name: 'non-hex C', proofs: [base({ C: '02zz' })] },
    { name: 'odd-length p2pk_e', proofs: [base({ p2pkE: '021' })] },
    { name: 'unsafe amount', proofs: [base({ amount: 2 ** 53 })] },
    { name: 'negative amount', proofs: [base({ amount: -1 })] },
    { name: 'fractional amount', proofs: [base({ amount: 1.5 })] },
    { name: 'witness JSON cannot hold', proofs: [base({ witness: { signatures: [], n: 1n } as unknown as Input['witness'] })] },
  ];
  for (const c of cases) {
    const token = { mint: MINTS[0], unit: 'sat', proofs: c.proofs };
    assert.equal(encodeCashuBDirect(token), null, `${c.name}: left to cashu-ts`);
    assert.deepEqual(outcome(() => encodeCashuB(token)), outcome(() => reference(token)), c.name);
  }
});
