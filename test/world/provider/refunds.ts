// What the node remembers per redeemed X-Cashu token, for POST /v1/balance/refund (balance.py
// refund_wallet_endpoint, X-Cashu branch): the "in" row written once the token is redeemed and
// recorded, the "out" row when change or a refund is minted. Versions before v0.4.4 answer 404
// where v0.4.5 answers 425; uncollected "out" rows are swept after refund_sweep_ttl_seconds
// (wallet.py _refund_sweep_once: the node redeems the token itself, then answers 410).
import type { ServerResponse } from 'node:http';
import { detailBody, sendJson } from './http.ts';
import type { VersionBehaviour } from './version.ts';

type Entry =
  | { state: 'pending'; requestId: string }
  | { state: 'minted'; requestId: string; token: string; amount: number; unit: string; mint: string; mintedAtMs: number; collected: boolean; swept: boolean }
  | { state: 'none'; requestId: string };

export interface RefundBookOptions {
  clock: () => number;
  behaviour: () => VersionBehaviour;
  sweepAgeMs: () => number;
  /** Redeem an uncollected refund token into the node's own pool; resolves to the amount, rejects if already spent. */
  sweep: (token: string, mint: string, unit: string) => Promise<number>;
  /** A refund came back to the node (amount in its unit). */
  onSwept: (amount: number, unit: string) => void;
}

export class RefundBook {
  private readonly byToken = new Map<string, Entry>();

  constructor(private readonly opts: RefundBookOptions) {}

  /** The token was redeemed and recorded; the request is running. */
  opened(token: string, requestId: string): void {
    this.byToken.set(token, { state: 'pending', requestId });
  }

  /** Change or a refund was minted for the request paid with `token`. */
  minted(token: string, refund: string, amount: number, unit: string, mint: string): void {
    const requestId = this.byToken.get(token)?.requestId ?? '';
    this.byToken.set(token, { state: 'minted', requestId, token: refund, amount, unit, mint, mintedAtMs: this.opts.clock(), collected: false, swept: false });
  }

  /** The request finished without minting anything: routstr then answers 425 for ever. */
  closed(token: string): void {
    const e = this.byToken.get(token);
    if (e?.state === 'pending') this.byToken.set(token, { state: 'none', requestId: e.requestId });
  }

  /** periodic_refund_sweep: redeem every uncollected refund older than the sweep age. Returns how many were swept. */
  async sweep(): Promise<number> {
    let swept = 0;
    for (const e of this.byToken.values()) if (await this.sweepOne(e)) swept++;
    return swept;
  }

  private async sweepOne(e: Entry): Promise<boolean> {
    if (e.state !== 'minted' || e.collected || e.swept || this.opts.clock() - e.mintedAtMs < this.opts.sweepAgeMs()) return false;
    try {
      const amount = await this.opts.sweep(e.token, e.mint, e.unit);
      e.swept = true;
      this.opts.onSwept(amount, e.unit);
      return true;
    } catch {
      e.collected = true; // "already spent": the client took it, so it counts as collected
      return false;
    }
  }

  /** Answer POST /v1/balance/refund for the X-Cashu token the request was paid with. */
  async answer(res: ServerResponse, token: string, requestId: string, base: Record<string, string>): Promise<number> {
    const e = this.byToken.get(token);
    if (!e) {
      sendJson(res, 404, detailBody('Refund not found', requestId), base);
      return 404;
    }
    if (e.state !== 'minted') {
      // routstr means to send Retry-After: 2 with the 425, but its exception handler drops the header.
      const status = this.opts.behaviour().refundPendingStatus;
      sendJson(res, status, detailBody(status === 425 ? 'Refund is pending; retry shortly.' : 'Refund not found', requestId), base);
      return status;
    }
    await this.sweepOne(e);
    if (e.swept) {
      sendJson(res, 410, detailBody('Refund has been swept', requestId), base);
      return 410;
    }
    e.collected = true;
    const body: Record<string, string> = { token: e.token };
    body[e.unit === 'msat' ? 'msats' : 'sats'] = String(e.amount);
    sendJson(res, 200, body, { ...base, 'X-Cashu': e.token });
    return 200;
  }
}
