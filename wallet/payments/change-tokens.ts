// Which tokens of a change batch may be swapped in: each decoded with the mint's keysets (cashuB
// carries short keyset ids). Refused: a token that does not decode, or repeats a proof of another
// token in the batch (a provider handing out the same change twice) - 'invalid'; a token made of
// our own proofs (a node echoes the token we sent on 400/422/503) - 'own': swapping it in would
// count the same sats twice, so the payment those proofs belong to is resolved instead. Pure.
import type { StoredProof } from '../store.ts';
import { toProofJson, type ProofJson } from '../swap/steps.ts';

export interface SortedBatch<R> {
  members: { row: R; proofs: ProofJson[] }[];
  refused: { row: R; state: 'invalid' | 'own'; error: string; evidence: unknown }[];
  /** Payments whose own proofs came back: resolve them (NUT-07, then reclaim). */
  ownPayments: string[];
}

export function sortBatch<R>(
  batch: readonly { row: R; token: string }[],
  unit: string,
  decode: (token: string) => { unit?: string; proofs: Parameters<typeof toProofJson>[0][] },
  ourProof: (secret: string) => StoredProof | undefined,
): SortedBatch<R> {
  const out: SortedBatch<R> = { members: [], refused: [], ownPayments: [] };
  const seen = new Set<string>();
  const own = new Set<string>();
  for (const b of batch) {
    let proofs: ProofJson[];
    try {
      const token = decode(b.token);
      if (token.unit && token.unit !== unit) throw new Error(`token unit ${token.unit} is not ${unit}`);
      proofs = token.proofs.map(toProofJson);
    } catch (err) {
      out.refused.push({ row: b.row, state: 'invalid', error: 'token does not decode for this mint', evidence: { reason: 'undecodable', detail: (err as Error).message } });
      continue;
    }
    const ours = proofs.map((p) => ourProof(p.secret)).filter((p) => p !== undefined);
    if (ours.length > 0) {
      out.refused.push({
        row: b.row, state: 'own', error: 'our own proofs handed back (an echo of the token we sent), not change',
        evidence: { reason: 'own_token', proofs: proofs.length, ours: ours.length, owners: [...new Set(ours.map((p) => `${p.reasonKind ?? p.state}:${p.reasonRef ?? ''}`))] },
      });
      for (const p of ours) if (p.reasonKind === 'request' && p.reasonRef) own.add(p.reasonRef);
      continue;
    }
    if (proofs.some((p) => seen.has(p.secret))) {
      out.refused.push({ row: b.row, state: 'invalid', error: 'token repeats proofs of another token', evidence: { reason: 'duplicate_proofs' } });
      continue;
    }
    for (const p of proofs) seen.add(p.secret);
    out.members.push({ row: b.row, proofs });
  }
  out.ownPayments = [...own];
  return out;
}
