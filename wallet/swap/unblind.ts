// Turning a mint's blind signatures into proofs, with the mint's public keys kept as precomputed
// curve points. cashu-ts's OutputData.toProof parses the amount's key from hex for every output and
// multiplies by it twice (unblinding, C = C_ - rK, and the NUT-12 DLEQ check, sG - eK): two of the
// four multiplications of arbitrary points an output costs (~2 ms each here). A mint's keys never
// change within a keyset, so each is parsed once and, once used often, given a window table
// (@noble/curves' `precompute`, as it keeps for the generator G), after which those two cost ~0.2 ms:
// ~10 -> ~6 ms of CPU per output. And the NUT-12 check works on public values only (the mint's key,
// our blinded message B_, the mint's C_, the proof's s and e): cashu-ts's verifyDLEQProof
// multiplies them with noble's constant-time `multiply` (2.1 ms each here, scalar-blinded),
// so it is handed the points with `multiply` bound to noble's variable-time `multiplyUnsafe`
// (0.77 ms; GLV-split wNAF), as noble's own signature checks multiply public keys: ~6 -> ~3.5 ms of
// CPU per output. The blinding factor r stays in constant-time multiplications (unblinding).
// The crypto is cashu-ts's own exports
// (verifyDLEQProof, constructUnblindedSignature); what this file does is the assembly toProof does,
// checked equal to it field for field (test/wallet/swap/unblind.test.ts), and the checks cashu-ts's
// completeSwap makes on the mint's answer (count, keyset, amount, DLEQ present).
import {
  CTSError, constructUnblindedSignature, pointFromHex, verifyDLEQProof,
  type Keyset, type OutputData, type Proof, type SerializedBlindedSignature,
} from '@cashu/cashu-ts';

type Point = ReturnType<typeof pointFromHex>;

/** Window size of a key's table: 2^7 points x 33 windows, 0.64 MB, ~60 ms to build here. */
const WINDOW = 8;
/** A key gets its table at its 16th output (~4 ms saved on each output after, so it pays back within ~15). */
const TABLE_AFTER_USES = 16;
/** Keys kept (a keyset has one per amount, 10-20 of them in use): the oldest is dropped past this (<= ~20 MB). */
const MAX_KEYS = 32;

/** Parsed points by the key's hex (a pure function of it, whichever keyset or mint it came from). */
const keyPoints = new Map<string, { point: Point; uses: number }>();

/** The point of `keyset`'s key for `amount`: parsed once, precomputed once it is used often. */
export function keyPoint(keyset: Pick<Keyset, 'id' | 'keys'>, amount: string): Point {
  const hex = (keyset.keys as Record<string, string | undefined>)[amount];
  if (typeof hex !== 'string') throw new CTSError(`Mint signed amount ${amount}, for which keyset ${keyset.id} has no key`);
  let key = keyPoints.get(hex);
  if (!key) {
    if (keyPoints.size >= MAX_KEYS) keyPoints.delete(keyPoints.keys().next().value!);
    keyPoints.set(hex, (key = { point: pointFromHex(hex), uses: 0 }));
  }
  if (++key.uses === TABLE_AFTER_USES) key.point = pointFromHex(hex).precompute(WINDOW, false);
  return key.point;
}

/**
 * `point` for a check on public values: its `multiply` is noble's variable-time `multiplyUnsafe`
 * (same product; a key's window table still used). Everything else is the point's own.
 */
function publicMultiplier(point: Point): Point {
  return Object.create(point, { multiply: { value: (scalar: bigint) => point.multiplyUnsafe(scalar) } }) as Point;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

function scalarBytes(hex: string, what: string): Uint8Array {
  if (!HEX64.test(hex)) throw new CTSError(`DLEQ ${what} from the mint is not 32 bytes of hex`);
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

/** One output's proof from the mint's signature for it: the DLEQ checked when present, then unblinded (OutputData.toProof). */
export function proofFromSignature(output: OutputData, sig: SerializedBlindedSignature, keyset: Pick<Keyset, 'id' | 'keys'>): Proof {
  const K = keyPoint(keyset, sig.amount.toString());
  const C_ = pointFromHex(sig.C_);
  let dleq: Proof['dleq'];
  if (sig.dleq) {
    const s = scalarBytes(sig.dleq.s, 's');
    const e = scalarBytes(sig.dleq.e, 'e');
    if (!verifyDLEQProof({ s, e, r: output.blindingFactor }, publicMultiplier(pointFromHex(output.blindedMessage.B_)), publicMultiplier(C_), publicMultiplier(K))) {
      throw new CTSError('DLEQ verification failed on mint response');
    }
    dleq = { s: Buffer.from(s).toString('hex'), e: Buffer.from(e).toString('hex'), r: output.blindingFactor.toString(16).padStart(64, '0') };
  }
  const { C } = constructUnblindedSignature({ id: sig.id, C_ }, output.blindingFactor, output.secret, K);
  const proof: Proof = { id: sig.id, amount: sig.amount, C: C.toHex(true), secret: new TextDecoder().decode(output.secret) } as Proof;
  if (dleq) proof.dleq = dleq;
  return proof;
}

/**
 * The mint's answer to a swap whose outputs were sent as `outputs` (in that order): one signature
 * each, same keyset and amount, a DLEQ proof on each when `requireDleq` - the checks cashu-ts's
 * completeSwap makes. Throws CTSError, as cashu-ts does, on any mismatch. Cheap: no curve arithmetic.
 */
export function checkSignatures(outputs: readonly OutputData[], sigs: readonly SerializedBlindedSignature[], requireDleq: boolean): void {
  if (sigs.length !== outputs.length) throw new CTSError(`Mint returned ${sigs.length} signatures, expected ${outputs.length}`);
  outputs.forEach((output, i) => {
    const sig = sigs[i];
    if (sig == null) throw new CTSError(`Mint response is missing a signature at index ${i}`);
    if (sig.id !== output.blindedMessage.id) throw new CTSError(`Mint signature keyset id at index ${i} does not match output: expected ${output.blindedMessage.id}, got ${sig.id}`);
    if (!sig.amount.equals(output.blindedMessage.amount)) throw new CTSError(`Mint returned signature with wrong amount at index ${i}: expected ${output.blindedMessage.amount.toString()}, got ${sig.amount.toString()}`);
    if (requireDleq && !sig.dleq) throw new CTSError(`Mint supports NUT-12, but returned a signature without DLEQ proof at index ${i}`);
  });
}
