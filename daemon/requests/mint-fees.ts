// The input fee (NUT-02, ppk per proof) of each trusted mint's sat keysets, read synchronously
// on the request path to size reservations. Loaded at start and refreshed in the background; a
// mint not known yet counts as charging 1000 ppk (one sat per proof), so a reservation is never
// sized below what the token may cost.
import { nullLogger, type Logger } from '../../protocol/logger.ts';

export const UNKNOWN_FEE_PPK = 1000;
const REFRESH_MS = 10 * 60_000;

export interface KeysetSource {
  keysets(mint: string): Promise<{ unit: string; active: boolean; inputFeePpk: number }[]>;
}

export class MintFees {
  private readonly ppk = new Map<string, { ppk: number; at: number }>();
  private readonly loading = new Map<string, Promise<void>>();

  constructor(
    private readonly source: KeysetSource,
    private readonly clock: () => number = Date.now,
    private readonly logger: Logger = nullLogger,
  ) {}

  /** ppk of the mint's active sat keysets (the highest), or UNKNOWN_FEE_PPK while unknown (a load starts). */
  feePpk(mint: string): number {
    const known = this.ppk.get(mint);
    if (!known || this.clock() - known.at > REFRESH_MS) void this.load(mint);
    return known?.ppk ?? UNKNOWN_FEE_PPK;
  }

  /** Load these mints now (at start); failures leave them unknown. */
  async refresh(mints: readonly string[]): Promise<void> {
    await Promise.all(mints.map((m) => this.load(m)));
  }

  private load(mint: string): Promise<void> {
    let running = this.loading.get(mint);
    if (running) return running;
    running = this.source
      .keysets(mint)
      .then((ks) => {
        const sat = ks.filter((k) => k.unit === 'sat' && k.active);
        this.ppk.set(mint, { ppk: sat.reduce((m, k) => Math.max(m, k.inputFeePpk), 0), at: this.clock() });
      })
      .catch((err) => this.logger.warn('mint keysets unavailable; its fee is assumed high until known', { mint, error: (err as Error).message }))
      .finally(() => this.loading.delete(mint));
    this.loading.set(mint, running);
    return running;
  }
}
