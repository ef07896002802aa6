// `model: "auto"`: the cheapest model at or above a quality floor (mission point 3: cut the
// sats per request without giving up quality). Quality is the user's call, not the market's:
// scores come from satroute.json, e.g.
//   "auto": { "minQuality": 70, "quality": { "gpt-4o": 80, "openai/gpt-4o-mini": 70, "llama-3-8b": 40 } }
// Keys are model ids or aliases as providers list them; a model without a score never
// qualifies. The router ranks every offer of every qualifying model by expected charge.
import { z } from 'zod';
import { RouteConfigError } from './errors.ts';

export const AUTO_MODEL = 'auto';

export const AutoConfigSchema = z.object({
  /** The lowest quality score a model may have to be chosen. */
  minQuality: z.number().finite(),
  /** Quality score per model id or alias (any scale, higher is better). */
  quality: z.record(z.string().min(1), z.number().finite()),
});
export type AutoConfig = z.infer<typeof AutoConfigSchema>;

/** The `auto` section of a loaded satroute.json (undefined when absent); throws RouteConfigError when invalid. */
export function autoConfigFrom(config: { auto?: unknown }): AutoConfig | undefined {
  if (config.auto === undefined) return undefined;
  const r = AutoConfigSchema.safeParse(config.auto);
  if (!r.success) throw new RouteConfigError(`satroute.json "auto": ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** The model ids/aliases at or above the floor, best first. */
export function qualifyingModels(auto: AutoConfig): string[] {
  return Object.entries(auto.quality)
    .filter(([, q]) => q >= auto.minQuality)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([m]) => m);
}
