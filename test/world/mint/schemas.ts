// zod schemas for the request bodies the test mint accepts (NUT-03/04/05/07/09).
import { z } from 'zod';

const amount = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const hex = z.string().regex(/^[0-9a-fA-F]+$/, 'expected hex');
/**
 * Items per request array, as Nutshell's `settings.mint_max_request_length` (cashu/core/settings.py,
 * default 1000), which caps every array of its request models (cashu/core/models/: PostCheckStateRequest
 * `Ys`, PostRestoreRequest `outputs`, PostSwapRequest, PostMeltRequest, PostMintRequest). Nutshell
 * answers FastAPI's 422 for a longer array; this mint answers it like its other schema failures.
 */
export const MAX_REQUEST_ITEMS = 1000;

export const blindedMessageSchema = z.object({ amount, id: z.string().min(1).max(128), B_: hex.length(66) });
export const proofSchema = z.object({
  amount,
  id: z.string().min(1).max(128),
  secret: z.string().min(1).max(1024),
  C: hex.length(66),
  witness: z.unknown().optional(),
  dleq: z.unknown().optional(),
});

export const swapSchema = z.object({ inputs: z.array(proofSchema).max(MAX_REQUEST_ITEMS), outputs: z.array(blindedMessageSchema).max(MAX_REQUEST_ITEMS) });
export const mintQuoteSchema = z.object({ amount: amount.min(1), unit: z.string(), description: z.string().max(640).nullish().transform((d) => d ?? undefined) });
export const mintSchema = z.object({ quote: z.string().min(1), outputs: z.array(blindedMessageSchema).max(MAX_REQUEST_ITEMS), signature: z.string().optional() });
export const meltQuoteSchema = z.object({ request: z.string().min(1).max(4096), unit: z.string(), options: z.unknown().optional() });
export const meltSchema = z.object({
  quote: z.string().min(1),
  inputs: z.array(proofSchema).max(MAX_REQUEST_ITEMS),
  outputs: z.array(blindedMessageSchema).max(MAX_REQUEST_ITEMS).nullish().transform((o) => o ?? undefined),
});
export const checkStateSchema = z.object({ Ys: z.array(hex.length(66)).max(MAX_REQUEST_ITEMS) });
export const restoreSchema = z.object({ outputs: z.array(blindedMessageSchema).max(MAX_REQUEST_ITEMS) });

export type BlindedMessageBody = z.infer<typeof blindedMessageSchema>;
export type SwapBody = z.infer<typeof swapSchema>;
export type MintQuoteBody = z.infer<typeof mintQuoteSchema>;
export type MintBody = z.infer<typeof mintSchema>;
export type MeltQuoteBody = z.infer<typeof meltQuoteSchema>;
export type MeltBody = z.infer<typeof meltSchema>;
export type CheckStateBody = z.infer<typeof checkStateSchema>;
export type RestoreBody = z.infer<typeof restoreSchema>;
