// The steps of a swap, written so they can run in a worker thread (wallet/swap/engine.ts):
// blinding outputs and checking the DLEQ proofs of incoming proofs (prepare), then the mint call,
// checking the mint's DLEQ proofs and unblinding (complete). DESIGN.md step 6: ~65 ms of CPU per
// swap, mostly DLEQ. Everything that crosses the thread boundary is plain JSON (amounts as numbers).
import { Amount, OutputData, Wallet, type GetInfoResponse, type KeyChainCache, type Proof, type SerializedOutputData } from '@cashu/cashu-ts';
import { mapMintError } from '../mints.ts';
import { TurnQueue } from '../turns.ts';
import { checkSignatures, proofFromSignature } from './unblind.ts';
import { MintRejectedError, SwapStepError } from '../errors.ts';

/** A proof as it crosses the thread boundary. */
export interface ProofJson {
  id: string;
  amount: number;
  secret: string;
  C: string;
  dleq?: { e: string; s: string; r?: string };
  witness?: Proof['witness'];
}

/** What a worker needs to act for a mint without asking it for keys again. */
export interface MintCache {
  mint: string;
  unit: string;
  info: GetInfoResponse;
  keychain: KeyChainCache;
}

export interface PrepareRequest {
  op: 'prepare';
  cache: MintCache;
  inputs: ProofJson[];
  /** Output denominations wanted (may sum to less than the amount; the rest is split by default). */
  denominations: number[];
  /** Refuse incoming proofs that lack a DLEQ proof (those that carry one are always checked). */
  requireDleq: boolean;
  /** A payment waits for this swap: its curve arithmetic goes before other swaps' (TurnQueue). */
  urgent?: boolean;
}
export interface PrepareResult {
  outputs: SerializedOutputData[];
  keysetId: string;
  /** inputs - fee: what the outputs add up to. */
  amount: number;
  fee: number;
}

export interface CompleteRequest {
  op: 'complete';
  cache: MintCache;
  inputs: ProofJson[];
  outputs: SerializedOutputData[];
  keysetId: string;
  /** As in PrepareRequest. */
  urgent?: boolean;
}
export interface CompleteResult {
  proofs: ProofJson[];
}

export type SwapRequest = PrepareRequest | CompleteRequest;

const wallets = new Map<string, Wallet>();
/** This thread's curve arithmetic, in slices, urgent first. */
const cpu = new TurnQueue();
/** Outputs unblinded and checked per slice: ~12 ms of CPU here, the longest a payment's split waits for other work. */
const OUTPUTS_PER_SLICE = 2;

function walletFor(cache: MintCache): Wallet {
  const fingerprint = cache.keychain.keysets.map((k) => `${k.id}:${k.active ? 1 : 0}:${k.input_fee_ppk ?? 0}`).join(',');
  const key = `${cache.mint} ${cache.unit} ${fingerprint}`;
  let wallet = wallets.get(key);
  if (!wallet) {
    wallet = new Wallet(cache.mint, { unit: cache.unit, requireSigDleq: true });
    wallet.loadMintFromCache(cache.info, cache.keychain);
    if (wallets.size > 32) wallets.clear();
    wallets.set(key, wallet);
  }
  return wallet;
}

export function toProofJson(p: Pick<Proof, 'id' | 'amount' | 'secret' | 'C' | 'dleq' | 'witness'>): ProofJson {
  const out: ProofJson = { id: p.id, amount: Amount.from(p.amount).toNumber(), secret: p.secret, C: p.C };
  if (p.dleq) out.dleq = { e: p.dleq.e, s: p.dleq.s, ...(p.dleq.r ? { r: p.dleq.r } : {}) };
  if (p.witness) out.witness = p.witness;
  return out;
}

function fromProofJson(p: ProofJson): Proof {
  return { ...p, amount: Amount.from(p.amount) } as Proof;
}

/** Blind outputs for a swap of `inputs` (no mint call). Throws SwapStepError{kind:'invalid'}. */
export async function prepareSwap(req: PrepareRequest): Promise<PrepareResult> {
  try {
    const wallet = walletFor(req.cache);
    // The swap itself is the mint's verdict on every input (NUT-03: it refuses a bad signature
    // or a spent proof), so an input's DLEQ checked offline first would only repeat it, at three
    // curve multiplications (~8 ms here) per proof: a quarter of the wallet's CPU under load,
    // spent mostly re-checking our own proofs when the reserve splits them (a node's change
    // carries no DLEQ: routstr-core sends it with include_dleq=False). So an input's DLEQ is
    // checked only when the caller requires one (`requireDleq`); the outputs' DLEQ (the mint's
    // signatures on our new proofs, NUT-12) is always checked, in completeSwap.
    const inputs = req.inputs.map((p) => (req.requireDleq ? fromProofJson(p) : fromProofJson({ ...p, dleq: undefined })));
    // Wanted denominations are a preference: never more than the inputs net after the mint's fee
    // (cashu-ts refuses a split above the amount, and a refused swap would refuse the token).
    const netAmount = req.inputs.reduce((a, p) => a + p.amount, 0) - wallet.getFeesForProofs(inputs).toNumber();
    const denominations = fitDenominations(req.denominations, netAmount);
    const outputType = { type: 'random' as const, ...(denominations.length ? { denominations } : {}) };
    const preview = await cpu.run(req.urgent ?? false, () => wallet.prepareSwapToReceive(inputs, { requireDleq: req.requireDleq }, outputType));
    return {
      outputs: (preview.keepOutputs ?? []).map((o) => OutputData.serialize(o)),
      keysetId: preview.keysetId,
      amount: preview.amount.toNumber(),
      fee: preview.fees.toNumber(),
    };
  } catch (err) {
    throw new SwapStepError({ kind: 'invalid', message: (err as Error).message });
  }
}

/** The wanted denominations, in order, as long as they fit in `amount` (the rest is split the default way). */
export function fitDenominations(wanted: readonly number[], amount: number): number[] {
  const out: number[] = [];
  let rest = amount;
  for (const d of wanted) {
    if (d > rest) break;
    out.push(d);
    rest -= d;
  }
  return out;
}

/** Send the swap to the mint with the persisted outputs, check and unblind the signatures. */
export async function completeSwap(req: CompleteRequest): Promise<CompleteResult> {
  const wallet = walletFor(req.cache);
  const keepOutputs = req.outputs.map((o) => OutputData.deserialize(o));
  const inputs = req.inputs.map(fromProofJson);
  try {
    const total = req.inputs.reduce((a, p) => a + p.amount, 0);
    const fee = wallet.getFeesForProofs(inputs);
    if (inputs.some((p) => p.witness) || keepOutputs.some((o) => o.ephemeralE)) {
      const { keep } = await wallet.completeSwap({ amount: Amount.from(total).subtract(fee), fees: fee, keysetId: req.keysetId, inputs, keepOutputs });
      return { proofs: keep.map(toProofJson) };
    }
    return { proofs: (await swapPlain(wallet, inputs, keepOutputs, req.keysetId, req.urgent ?? false)).map(toProofJson) };
  } catch (raw) {
    const err = mapMintError(req.cache.mint, raw);
    if (err instanceof MintRejectedError) throw new SwapStepError({ kind: 'rejected', message: err.message, mintCode: err.mintCode });
    throw new SwapStepError({ kind: 'unavailable', message: err.message, refused: connectionRefused(raw) });
  }
}

/**
 * wallet.completeSwap for plain proofs and outputs (no P2PK), its signatures turned into proofs with
 * the mint's keys precomputed (./unblind.ts): the same request (outputs in ascending amount, inputs
 * without their DLEQ), the same checks, the same proofs, in the outputs' order.
 */
async function swapPlain(wallet: Wallet, inputs: Proof[], outputs: OutputData[], keysetId: string, urgent: boolean): Promise<Proof[]> {
  const order = outputs.map((_, i) => i).sort((a, b) => outputs[a].blindedMessage.amount.compareTo(outputs[b].blindedMessage.amount));
  const sorted = order.map((i) => outputs[i]);
  const { signatures } = await wallet.mint.swap({
    inputs: inputs.map(({ id, amount, secret, C }) => ({ id, amount, secret, C })),
    outputs: sorted.map((o) => o.blindedMessage),
  });
  const requireDleq = wallet.getMintInfo().isSupported(12).supported;
  checkSignatures(sorted, signatures, requireDleq);
  const keyset = wallet.getKeyset(keysetId);
  const proofs: Proof[] = [];
  for (let i = 0; i < sorted.length; i += OUTPUTS_PER_SLICE) {
    const slice = sorted.slice(i, i + OUTPUTS_PER_SLICE);
    proofs.push(...(await cpu.run(urgent, () => slice.map((o, k) => proofFromSignature(o, signatures[i + k], keyset)))));
  }
  const out = new Array<Proof>(outputs.length);
  order.forEach((i, k) => (out[i] = proofs[k]));
  return out;
}

export async function runSwapRequest(req: SwapRequest): Promise<PrepareResult | CompleteResult> {
  return req.op === 'prepare' ? prepareSwap(req) : completeSwap(req);
}

function connectionRefused(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === 'ECONNREFUSED') return true;
  }
  return false;
}
