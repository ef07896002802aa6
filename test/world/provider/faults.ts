// The upstream behind the node, and its pricing, misbehaving. routstr-core has no limiter of its
// own: every paid request is redeemed and forwarded, and whatever the upstream answers that is
// not 200 (429, 402/413 when its credit is gone, 404 for a model path it does not serve, 5xx)
// comes back after the token was taken, with a full refund (upstream/base.py
// forward_x_cashu_request). A price change lands between a client's routing and its request.
import type { ProviderKnobs, UpstreamError } from './types.ts';

export class UpstreamFaults {
  private readonly windowStarts: number[] = [];
  private errorKnob: UpstreamError | null = null;
  private errorSinceMs: number | null = null;
  private priceKnob: ProviderKnobs['priceChange'] = null;
  private priceCountdown = 0;

  constructor(
    private readonly knobs: ProviderKnobs,
    private readonly clock: () => number,
    private readonly random: () => number,
  ) {}

  /** The status the upstream answers this request with, or null when it serves it. Checked after redemption. */
  failure(modelId: string): number | null {
    const forced = this.forcedError(modelId);
    if (forced !== null) return forced;
    if (this.knobs.rateLimit && !this.admit()) return 429;
    if (this.knobs.failureRate > 0 && this.random() < this.knobs.failureRate) return this.knobs.failureStatus;
    return null;
  }

  private forcedError(modelId: string): number | null {
    const knob = this.knobs.upstreamError;
    if (knob !== this.errorKnob) {
      this.errorKnob = knob;
      this.errorSinceMs = null;
    }
    if (!knob || (knob.models && !knob.models.includes(modelId))) return null;
    const now = this.clock();
    this.errorSinceMs ??= now;
    if (knob.forMs !== undefined && now - this.errorSinceMs >= knob.forMs) {
      this.knobs.upstreamError = null; // the period is over (credit topped up, limit lifted)
      this.errorKnob = null;
      return null;
    }
    return knob.status;
  }

  // The upstream's fixed-window rate limit, on the injected clock.
  private admit(): boolean {
    const rl = this.knobs.rateLimit!;
    if (rl.maxRequests === undefined) return false;
    const now = this.clock();
    const windowMs = rl.windowMs ?? 60_000;
    while (this.windowStarts.length && this.windowStarts[0] <= now - windowMs) this.windowStarts.shift();
    if (this.windowStarts.length >= rl.maxRequests) return false;
    this.windowStarts.push(now);
    return true;
  }

  /** The price factor to apply before this paid request (once per knob setting), or null. */
  priceChangeDue(): number | null {
    const knob = this.knobs.priceChange;
    if (knob !== this.priceKnob) {
      this.priceKnob = knob;
      this.priceCountdown = knob?.afterRequests ?? 1;
    }
    if (!knob) return null;
    this.priceCountdown -= 1;
    if (this.priceCountdown > 0) return null;
    this.knobs.priceChange = null;
    this.priceKnob = null;
    return knob.factor;
  }
}
