// The cap on top-ups: at most `maxCount` top-ups and `maxSat` sats of them per provider in any
// window of `windowMs` (injected clock). A top-up answers the node's own
// `minimum_balance_required` (the token was NOT redeemed), so it moves no money by itself; the
// cap is the second fence after classifying 402s by their body: routstrd lost ~39,000 sats in
// 1.5 s topping up in a loop against a provider whose upstream was out of credit (ROUTSTR.md
// section 3). Past the cap the attempt gives its token back and the next candidate is tried.
// In memory: a restart forgets the window, which only ever allows fewer top-ups than a loop needs.

export interface TopUpCapOptions {
  /** Top-ups allowed per provider per window; 0 turns top-ups off. */
  maxCount: number;
  /** Sats of top-ups (the new tokens' value) allowed per provider per window. */
  maxSat: number;
  windowMs: number;
}

export const TOPUP_CAP_DEFAULTS: Readonly<TopUpCapOptions> = Object.freeze({ maxCount: 5, maxSat: 2_000, windowMs: 10 * 60_000 });

export class TopUpCap {
  private readonly recent = new Map<string, { at: number; sat: number }[]>();

  constructor(
    readonly options: TopUpCapOptions = TOPUP_CAP_DEFAULTS,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Take one top-up of `amountSat` at `providerId` if the window allows it (recorded at once); false otherwise. */
  take(providerId: string, amountSat: number): boolean {
    const now = this.clock();
    const list = (this.recent.get(providerId) ?? []).filter((e) => now - e.at < this.options.windowMs);
    const used = list.reduce((t, e) => t + e.sat, 0);
    const allowed = list.length < this.options.maxCount && used + amountSat <= this.options.maxSat;
    if (allowed) list.push({ at: now, sat: amountSat });
    if (list.length) this.recent.set(providerId, list);
    else this.recent.delete(providerId);
    return allowed;
  }

  /** Top-ups counted against a provider right now. */
  used(providerId: string): { count: number; sat: number } {
    const now = this.clock();
    const list = (this.recent.get(providerId) ?? []).filter((e) => now - e.at < this.options.windowMs);
    return { count: list.length, sat: list.reduce((t, e) => t + e.sat, 0) };
  }
}
