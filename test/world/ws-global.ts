// Side-effect module: @getalby/sdk bundles nostr-tools, which captures the global WebSocket
// when it is first imported. Node 20 has none, so import this module before @getalby/sdk.
import { WebSocket } from 'ws';

if (typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'undefined') {
  (globalThis as { WebSocket?: unknown }).WebSocket = WebSocket;
}
