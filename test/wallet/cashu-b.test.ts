import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getDecodedToken, getEncodedToken } from '@cashu/cashu-ts';
import { encodeTokenB, writesExactly } from '../../wallet/cashu-b.ts';
import { toCashuProof, type StoredProof } from '../../wallet/store.ts';

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

const rand = rng(42);
const hex = (bytes: number) => Array.from({ length: bytes }, () => Math.floor(rand() * 256).toString(16).padStart(2, '0')).join('');
const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];

function storedProof(): StoredProof {
  const keysetId = pick([`00${hex(7)}`, `01${hex(32)}`, `00${hex(7)}`.toUpperCase()]);
  return {
    secret: pick([hex(32), `["P2PK",{"nonce":"${hex(32)}","data":"02${hex(32)}"}]`, 'sécret-ünïcode-'.repeat(1 + Math.floor(rand() * 30))]),
    mint: 'x', unit: 'sat', keysetId,
    amount: pick([1, 2, 16, 23, 24, 255, 256, 65535, 65536, 2 ** 31, 2 ** 32, 2 ** 40, Number.MAX_SAFE_INTEGER]),
    C: `02${hex(32)}`,
    dleq: rand() < 0.8 ? { e: hex(32), s: hex(32), r: hex(32) } : null,
    witness: rand() < 0.2 ? pick<StoredProof['witness']>([`{"signatures":["${hex(64)}"]}`, { signatures: [hex(64)] }]) : null,
    p2pkE: rand() < 0.2 ? `03${hex(32)}` : null,
    state: 'unspent', reasonKind: null, reasonRef: null, source: 'test', createdAt: 0,
  };
}

test('the request-path cashuB encoder writes exactly the token cashu-ts writes', () => {
  for (let i = 0; i < 400; i++) {
    const proofs = Array.from({ length: 1 + Math.floor(rand() * (i % 10 === 0 ? 40 : 8)) }, storedProof);
    const mint = pick(['http://127.0.0.1:3338', `https://mint.example/${'p'.repeat(Math.floor(rand() * 300))}`]);
    const unit = pick(['sat', 'msat', '']);
    assert.ok(proofs.every(writesExactly), 'written here, not by cashu-ts');
    const ours = encodeTokenB(mint, unit, proofs);
    assert.equal(ours, getEncodedToken({ mint, unit, proofs: proofs.map(toCashuProof) }), `case ${i}`);
  }
});

test('the encoded token decodes back to the same proofs', () => {
  const proofs = Array.from({ length: 5 }, () => ({ ...storedProof(), keysetId: '00ab12cd34ef5678', witness: null, p2pkE: null }));
  const decoded = getDecodedToken(encodeTokenB('http://127.0.0.1:3338', 'sat', proofs), ['00ab12cd34ef5678']);
  assert.equal(decoded.mint, 'http://127.0.0.1:3338');
  assert.deepEqual(decoded.proofs.map((p) => [p.secret, p.C, Number(p.amount), p.id, p.dleq?.r]), proofs.map((p) => [p.secret, p.C, p.amount, p.keysetId, p.dleq?.r]));
});

test('proofs it cannot write exactly go to cashu-ts, which refuses them the same way', () => {
  const legacy = { ...storedProof(), keysetId: 'I2yN+iRYfkzT' };
  const noR = { ...storedProof(), dleq: { e: hex(32), s: hex(32) } as StoredProof['dleq'] };
  for (const p of [legacy, noR]) {
    const theirs = (() => { try { return getEncodedToken({ mint: 'http://m', unit: 'sat', proofs: [toCashuProof(p)] }); } catch (err) { return (err as Error).message; } })();
    const ours = (() => { try { return encodeTokenB('http://m', 'sat', [p]); } catch (err) { return (err as Error).message; } })();
    assert.equal(ours, theirs);
    assert.doesNotMatch(ours, /^cashuB/);
    assert.equal(writesExactly(p), false);
  }
});
