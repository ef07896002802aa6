// The market's methods on the daemon's control socket (daemon/control/server.ts).
import type { Market } from '../market.ts';

/** Control-socket methods for the market: what `satroute providers` and `models` ask the running daemon. */
export function marketControlHandlers(market: Market): Record<string, () => unknown> {
  return {
    'market.providers': () => market.providers(),
    'market.models': () => market.models(),
  };
}
