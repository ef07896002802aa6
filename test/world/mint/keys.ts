// Keysets of the test mint: key generation, blind signing with a NUT-12 DLEQ proof, and proof
// verification. Ids are NUT-02 version "00" (16 hex chars, what nutshell and most mints in the
// wild still publish) or version "01" (66 hex chars; cashuB tokens then carry a short id).
import { createNewMintKeys, hash_e, hashToCurve, pointFromHex } from '@cashu/cashu-ts';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, numberToBytesBE } from '@noble/curves/utils.js';
import { MintError, MintErrorCode } from './errors.ts';

export type Unit = 'sat' | 'msat';
/** NUT-02 keyset id version: '00' (most real mints today) or '01'. */
export type KeysetIdVersion = '00' | '01';
type Point = ReturnType<typeof pointFromHex>;

const Fn = secp256k1.Point.Fn;
const G = secp256k1.Point.BASE;
const utf8 = new TextEncoder();

/** Amounts 1, 2, 4 ... 2^31: one key per power of two. */
const KEY_COUNT = 32;

interface AmountKey {
  privateKey: bigint;
  publicKey: Point; // A = k*G, cached for DLEQ
}

export interface BlindSignatureJson {
  id: string;
  amount: number;
  C_: string;
  dleq: { e: string; s: string };
}

export interface ProofInput {
  id: string;
  amount: number;
  secret: string;
  C: string;
}

export class Keyset {
  readonly id: string;
  readonly unit: Unit;
  readonly inputFeePpk: number;
  active = true;
  /** amount (as decimal string) -> compressed public key hex, as NUT-01 publishes it. */
  readonly publicKeys: Record<string, string>;
  private readonly keys = new Map<number, AmountKey>();

  constructor(unit: Unit, inputFeePpk: number, idVersion: KeysetIdVersion = '00') {
    const versionByte = idVersion === '00' ? 0 : 1;
    const pair = createNewMintKeys(KEY_COUNT, undefined, { unit, input_fee_ppk: inputFeePpk || undefined, versionByte });
    this.id = pair.keysetId;
    this.unit = unit;
    this.inputFeePpk = inputFeePpk;
    this.publicKeys = {};
    for (const [amount, pub] of Object.entries(pair.pubKeys)) {
      this.publicKeys[amount] = bytesToHex(pub);
      this.keys.set(Number(amount), { privateKey: Fn.fromBytes(pair.privKeys[amount]), publicKey: pointFromHex(bytesToHex(pub)) });
    }
  }

  hasAmount(amount: number): boolean {
    return this.keys.has(amount);
  }

  private key(amount: number): AmountKey {
    const key = this.keys.get(amount);
    if (!key) throw new MintError(MintErrorCode.AMOUNT_OUTSIDE_LIMIT, `keyset ${this.id} has no key for amount ${amount}`);
    return key;
  }

  /**
   * Blind signature C_ = k*B_ with its DLEQ proof (NUT-12): r random, R1 = r*G, R2 = r*B_,
   * e = hash(R1, R2, A, C_), s = r + e*k. Variable-time multiplication: a test mint
   * favours speed (about 3x cheaper than constant-time), and its keys guard nothing.
   */
  sign(amount: number, blindedHex: string): BlindSignatureJson {
    const { privateKey, publicKey } = this.key(amount);
    const B_ = parsePoint(blindedHex, 'blinded message');
    const C_ = B_.multiplyUnsafe(privateKey);
    const r = Fn.fromBytes(secp256k1.utils.randomSecretKey());
    const R1 = G.multiply(r);
    const R2 = B_.multiplyUnsafe(r);
    const eBytes = hash_e([R1, R2, publicKey, C_]);
    const e = Fn.fromBytes(eBytes);
    const s = Fn.add(r, Fn.mul(e, privateKey));
    return {
      id: this.id,
      amount,
      C_: C_.toHex(true),
      dleq: { e: bytesToHex(eBytes), s: bytesToHex(numberToBytesBE(s, 32)) },
    };
  }

  /** Check C == k*hash_to_curve(secret); `Y` is hash_to_curve(secret), computed by the caller. */
  verify(proof: ProofInput, Y: Point): void {
    const { privateKey } = this.key(proof.amount);
    const C = parsePoint(proof.C, 'proof signature');
    if (!Y.multiplyUnsafe(privateKey).equals(C)) {
      throw new MintError(MintErrorCode.PROOF_VERIFICATION_FAILED, 'proof could not be verified');
    }
  }
}

/** Y = hash_to_curve(secret), the point NUT-07 identifies a proof by. */
export function proofY(secret: string): Point {
  return hashToCurve(utf8.encode(secret));
}

function parsePoint(hex: string, what: string): Point {
  try {
    return pointFromHex(hex);
  } catch {
    throw new MintError(MintErrorCode.UNSPECIFIED, `invalid ${what} point`);
  }
}
