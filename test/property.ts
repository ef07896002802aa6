// fast-check with a fixed seed per test, so CI runs the same inputs every time. On failure
// fast-check's message carries the seed, the path and the shrunk counterexample; rerun just
// that case with SATROUTE_PROPERTY_SEED=<seed>. SATROUTE_PROPERTY_RUNS=<factor> multiplies
// every numRuns, to search further by hand (e.g. 50 overnight) without slowing the suite.
import fc from 'fast-check';

export interface PropertyRun {
  seed: number;
  numRuns: number;
}

function parameters(run: PropertyRun): fc.Parameters<unknown> {
  const seed = process.env.SATROUTE_PROPERTY_SEED;
  const factor = Number(process.env.SATROUTE_PROPERTY_RUNS ?? 1);
  return {
    seed: seed === undefined ? run.seed : Number(seed),
    numRuns: Math.max(1, Math.round(run.numRuns * (Number.isFinite(factor) && factor > 0 ? factor : 1))),
  };
}

/** fc.assert of a synchronous property with a fixed seed. */
export function assertProperty<Ts>(property: fc.IProperty<Ts>, run: PropertyRun): void {
  fc.assert(property, parameters(run) as fc.Parameters<Ts>);
}

/** fc.assert of an asynchronous property with a fixed seed. */
export function assertAsyncProperty<Ts>(property: fc.IAsyncProperty<Ts>, run: PropertyRun): Promise<void> {
  return fc.assert(property, parameters(run) as fc.Parameters<Ts>);
}
