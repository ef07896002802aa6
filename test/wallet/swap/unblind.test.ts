import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Amount, CTSError, OutputData, type SerializedBlindedSignature } from '@cashu/cashu-ts';
import { checkSignatures, keyPoint, proofFromSignature } from '../../../wallet/swap/unblind.ts';
import { Keyset } from '../../world/mint/keys.ts';

// A keyset of the world's mint (NUT-02 ids of both versions), signing as a Nutshell mint does (NUT-12 DLEQ included).
function signed(version: '00' | '01', amount: number, split?: number[], mint = new Keyset('sat', 0, version)) {
  const keyset = { id: mint.id, keys: mint.publicKeys };
  const outputs = OutputData.createRandomData(amount, keyset as never, split);
  const sigs: SerializedBlindedSignature[] = outputs.map((o) => {
    const s = mint.sign(o.blindedMessage.amount.toNumber(), o.blindedMessage.B_);
    return { ...s, amount: Amount.from(s.amount) } as SerializedBlindedSignature;
  });
  return { mint, keyset, outputs, sigs };
}

// What the swap thread does with the mint's answer (wallet/swap/steps.ts swapPlain, there in slices).
function proofsFromSignatures(outputs: OutputData[], sigs: SerializedBlindedSignature[], keyset: { id: string; keys: Record<string, string> }, requireDleq: boolean) {
  checkSignatures(outputs, sigs, requireDleq);
  return outputs.map((o, i) => proofFromSignature(o, sigs[i], keyset));
}

const json = (x: unknown) => JSON.stringify(x, (_, v) => (typeof v === 'bigint' || v instanceof Amount ? v.toString() : v));

test('the proofs are exactly those cashu-ts makes from the same signatures (C, secret, amount, DLEQ with r), for both keyset id versions', () => {
  for (const version of ['00', '01'] as const) {
    const { keyset, outputs, sigs } = signed(version, 1_000_003);
    const ours = proofsFromSignatures(outputs, sigs, keyset, true);
    const theirs = outputs.map((o, i) => o.toProof(sigs[i], keyset as never));
    assert.equal(ours.length, outputs.length);
    assert.equal(json(ours), json(theirs));
    // Later batches go through the cached key points, and past 16 uses through a key's table: still the same.
    const again = signed(version, 40, Array(40).fill(1));
    assert.equal(json(proofsFromSignatures(again.outputs, again.sigs, again.keyset, true)), json(again.outputs.map((o, i) => o.toProof(again.sigs[i], again.keyset as never))));
  }
});

test('a signature whose DLEQ does not prove the advertised key is refused, as cashu-ts refuses it (a mint tagging or a corrupt answer)', () => {
  const { keyset, outputs, sigs } = signed('01', 21);
  const other = signed('01', 21);
  // C_ signed with another key: its DLEQ proves that other key, not the one the keyset publishes.
  const tagged = sigs.map((s, i) => (i === 1 ? { ...s, C_: other.mint.sign(s.amount.toNumber(), outputs[i].blindedMessage.B_).C_ } : s));
  assert.throws(() => proofsFromSignatures(outputs, tagged, keyset, true), CTSError);
  assert.throws(() => outputs[1].toProof(tagged[1], keyset as never), /DLEQ verification failed/);
  const flip = (h: string) => (h[63] === '0' ? '1' : '0');
  const badS = sigs.map((s, i) => (i === 0 ? { ...s, dleq: { ...s.dleq!, s: s.dleq!.s.slice(0, 63) + flip(s.dleq!.s) } } : s));
  assert.throws(() => proofsFromSignatures(outputs, badS, keyset, true), /DLEQ verification failed/);
  const notHex = sigs.map((s, i) => (i === 0 ? { ...s, dleq: { ...s.dleq!, e: 'zz' + s.dleq!.e.slice(2) } } : s));
  assert.throws(() => proofsFromSignatures(outputs, notHex, keyset, true), CTSError);
});

test('the answer is checked as cashu-ts checks it: one signature per output, same keyset, same amount, a DLEQ on each when the mint supports NUT-12', () => {
  const { keyset, outputs, sigs } = signed('00', 13); // 8 + 4 + 1
  assert.throws(() => proofsFromSignatures(outputs, sigs.slice(1), keyset, true), /Mint returned 2 signatures, expected 3/);
  assert.throws(() => proofsFromSignatures(outputs, sigs.map((s, i) => (i === 2 ? { ...s, id: '00ffffffffffffff' } : s)), keyset, true), /keyset id at index 2/);
  assert.throws(() => proofsFromSignatures(outputs, sigs.map((s, i) => (i === 0 ? { ...s, amount: Amount.from(2) } : s)), keyset, true), /wrong amount at index 0/);
  const bare = sigs.map(({ dleq: _, ...s }) => s as SerializedBlindedSignature);
  assert.throws(() => proofsFromSignatures(outputs, bare, keyset, true), /without DLEQ proof at index 0/);
  // A mint without NUT-12: proofs without a DLEQ, as cashu-ts makes them.
  assert.equal(json(proofsFromSignatures(outputs, bare, keyset, false)), json(outputs.map((o, i) => o.toProof(bare[i], keyset as never))));
});

test('an amount the keyset has no key for is refused, not guessed', () => {
  const { keyset } = signed('01', 1);
  assert.throws(() => keyPoint({ id: keyset.id, keys: { '1': keyset.keys['1'] } as never }, '3'), /has no key/);
});

test('the DLEQ check, multiplying the public points in variable time, gives cashu-ts\'s verdict on every signature, genuine or tampered', () => {
  const { keyset, outputs, sigs } = signed('01', 24, Array(24).fill(1));
  const other = signed('01', 24, Array(24).fill(1));
  const flip = (h: string, at: number) => h.slice(0, at) + (h[at] === '0' ? '1' : '0') + h.slice(at + 1);
  let refused = 0;
  sigs.forEach((sig, i) => {
    // Untouched, or s / e / C_ changed: a bit of s or e, or C_ signed with another key.
    const cases: SerializedBlindedSignature[] = [
      sig,
      { ...sig, dleq: { ...sig.dleq!, s: flip(sig.dleq!.s, i % 64) } },
      { ...sig, dleq: { ...sig.dleq!, e: flip(sig.dleq!.e, (i * 7) % 64) } },
      { ...sig, C_: other.mint.sign(1, outputs[i].blindedMessage.B_).C_ },
    ];
    for (const c of cases) {
      const verdict = (f: () => unknown) => { try { f(); return 'accepted'; } catch { return 'refused'; } };
      const ours = verdict(() => proofFromSignature(outputs[i], c, keyset));
      assert.equal(ours, verdict(() => outputs[i].toProof(c, keyset as never)), `signature ${i}`);
      if (ours === 'refused') refused++;
    }
  });
  assert.equal(refused, 24 * 3);
});
