// What the node remembers per redeemed X-Cashu token, for POST /v1/balance/refund.
import type { ServerResponse } from 'node:http';
import { detailBody, sendJson } from './http.ts';

type Entry =
  | { state: 'pending'; requestId: string }
  | { state: 'minted'; requestId: string; token: string; amount: number; unit: string }
  | { state: 'none'; requestId: string };

export class RefundBook {
  private readonly byToken = new Map<string, Entry>();

  /** The token was redeemed; the request is running. */
  opened(token: string, requestId: string): void {
    this.byToken.set(token, { state: 'pending', requestId });
  }

  /** Change or a refund was minted for the request paid with `token`. */
  minted(token: string, refund: string, amount: number, unit: string): void {
    const requestId = this.byToken.get(token)?.requestId ?? '';
    this.byToken.set(token, { state: 'minted', requestId, token: refund, amount, unit });
  }

  /** The request finished without minting anything: routstr then answers 425 for ever. */
  closed(token: string): void {
    const e = this.byToken.get(token);
    if (e?.state === 'pending') this.byToken.set(token, { state: 'none', requestId: e.requestId });
  }

  /** Answer POST /v1/balance/refund (X-Cashu branch). */
  answer(res: ServerResponse, token: string | undefined, requestId: string, base: Record<string, string>): number {
    if (!token) {
      sendJson(res, 401, detailBody("Invalid authorization. Use 'Bearer <cashu-token>' or 'Bearer <api-key>'", requestId), base);
      return 401;
    }
    const e = this.byToken.get(token);
    if (!e) {
      sendJson(res, 404, detailBody('Refund not found', requestId), base);
      return 404;
    }
    if (e.state !== 'minted') {
      // routstr means to send Retry-After: 2 here, but the header does not reach the client.
      sendJson(res, 425, detailBody('Refund is pending; retry shortly.', requestId), base);
      return 425;
    }
    const body: Record<string, string> = { token: e.token };
    body[e.unit === 'msat' ? 'msats' : 'sats'] = String(e.amount);
    sendJson(res, 200, body, { ...base, 'X-Cashu': e.token });
    return 200;
  }
}
