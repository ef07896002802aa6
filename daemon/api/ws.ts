// The WebSocket API, `ws://HOST:PORT/v1/ws` (DESIGN.md "Interfaces"): attached to the daemon's
// HTTP server, it takes the `upgrade`s of that one path and runs a WsConnection per socket.
// Requests enter the lifecycle through `RequestHandler.handle`, as HTTP's do; live events come
// from `DaemonEvents` through one subscription, serialised once and fanned out to the
// connections subscribed to their topic. Memory stays bounded per connection (the limits
// below; ws-connection.ts and ws-request.ts say how); a heartbeat ping finds clients that
// vanished without closing, so their requests are canceled and settled too.
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';
import { nullLogger, type Logger } from '../../protocol/logger.ts';
import { DEFAULT_MAX_REQUEST_BYTES } from '../../protocol/openai.ts';
import type { DaemonEvents, RequestHandler } from '../requests/contract.ts';
import type { ClientKeys } from './auth.ts';
import { WsConnection, type WsCounters, type WsLimits } from './ws-connection.ts';
import { Inbox } from './ws-inbox.ts';
import { eventMessage } from './ws-messages.ts';
import { realTimers, type WsTimers } from './ws-request.ts';

export type { WsLimits } from './ws-connection.ts';
export type { WsTimers } from './ws-request.ts';

export const WS_PATH = '/v1/ws';

export interface WsServerLimits extends WsLimits {
  /** A ping every this often; a client that did not answer the previous one is dropped. 0: off. */
  heartbeatMs: number;
  /** The clients' messages hold the event loop at most this long per turn (ws-inbox.ts). */
  inboxSliceMs: number;
  /** On close, sockets that have not finished the closing handshake by then are cut. */
  closeGraceMs: number;
}

export const DEFAULT_WS_LIMITS: WsServerLimits = {
  authTimeoutMs: 5_000,
  // A request body may be DEFAULT_MAX_REQUEST_BYTES (base64 images); the envelope adds little.
  maxMessageBytes: DEFAULT_MAX_REQUEST_BYTES + 64 * 1024,
  maxPayloadBytes: 2 * DEFAULT_MAX_REQUEST_BYTES,
  maxRequestsPerConnection: 1_000,
  highWaterBytes: 256 * 1024,
  hardLimitBytes: 4 * 1024 * 1024,
  stallTimeoutMs: 30_000,
  heartbeatMs: 30_000,
  inboxSliceMs: 5,
  closeGraceMs: 2_000,
};

export interface WsDeps {
  keys: Pick<ClientKeys, 'authenticate' | 'verify' | 'get'>;
  handler: RequestHandler;
  /** The `payments` and `providers` topics; without it subscriptions receive nothing. */
  events?: DaemonEvents;
  logger?: Logger;
  clock?: () => number;
  timers?: WsTimers;
  limits?: Partial<WsServerLimits>;
}

/** For metrics and status. */
export interface WsStats {
  connections: number;
  /** Connections that have authenticated. */
  authenticated: number;
  requestsInFlight: number;
  /** Subscription events not sent to clients that were not reading (since start). */
  droppedEvents: number;
  /** Times a streaming request waited for its client to read (since start). */
  backpressureWaits: number;
  /** Requests failed because their client did not read (since start). */
  backpressureFailures: number;
  /** Bytes queued on all sockets right now. */
  bufferedBytes: number;
}

export interface WebSocketApi {
  /** Refuse new connections and requests; resolves once every running request has ended. */
  drain(): Promise<void>;
  /** Cancel what still runs, close every socket (1001), stop listening for upgrades; resolves when all is settled and closed. */
  close(): Promise<void>;
  stats(): WsStats;
}

/** Serve the WebSocket API on `server`'s upgrades to /v1/ws. */
export function attachWebSocket(server: http.Server, deps: WsDeps): WebSocketApi {
  const limits: WsServerLimits = { ...DEFAULT_WS_LIMITS, ...deps.limits };
  const logger = deps.logger ?? nullLogger;
  const timers = deps.timers ?? realTimers;
  const counters: WsCounters = { requestsInFlight: 0, droppedEvents: 0, backpressureWaits: 0, backpressureFailures: 0 };
  const connections = new Map<WsConnection, Promise<void>>();
  let draining = false;
  let closing = false;
  const inbox = new Inbox({ sliceMs: limits.inboxSliceMs, onError: (err) => logger.error('ws message handling failed', { error: err }) });
  const ctx = {
    keys: deps.keys, handler: deps.handler, logger, clock: deps.clock ?? Date.now, timers, limits, counters, inbox,
    draining: () => draining,
  };
  const options: ServerOptions & { closeTimeout: number } = {
    noServer: true, clientTracking: false, perMessageDeflate: false, maxPayload: limits.maxPayloadBytes, closeTimeout: limits.closeGraceMs,
  };
  const wss = new WebSocketServer(options);

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (pathOf(req.url) !== WS_PATH) {
      // Another upgrade listener may serve other paths; alone, we answer for the server.
      if (server.listenerCount('upgrade') === 1) refuseUpgrade(socket, 404, 'not_found', `no WebSocket at ${pathOf(req.url) ?? '?'}; use ${WS_PATH}`);
      return;
    }
    if (draining) return refuseUpgrade(socket, 503, 'internal', 'satroute is shutting down');
    const authorization = req.headers.authorization;
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const conn = new WsConnection(ws, ctx, authorization);
      connections.set(conn, new Promise<void>((resolve) => ws.once('close', () => {
        connections.delete(conn);
        resolve();
      })));
    });
  };
  server.on('upgrade', onUpgrade);

  const unsubscribe = deps.events?.subscribe((e) => {
    if (connections.size === 0) return;
    try {
      const text = eventMessage(e);
      for (const conn of connections.keys()) conn.deliver(e.topic, text);
    } catch (err) {
      logger.error('ws event fan-out failed', { topic: e.topic, error: err });
    }
  });

  let heartbeat: unknown;
  const beat = () => {
    for (const conn of connections.keys()) conn.heartbeat();
    heartbeat = timers.setTimeout(beat, limits.heartbeatMs);
  };
  if (limits.heartbeatMs > 0) heartbeat = timers.setTimeout(beat, limits.heartbeatMs);

  return {
    async drain() {
      draining = true;
      await Promise.all([...connections.keys()].map((c) => c.whenSettled()));
    },
    async close() {
      if (closing) return;
      closing = draining = true;
      server.off('upgrade', onUpgrade);
      if (heartbeat !== undefined) timers.clearTimeout(heartbeat);
      unsubscribe?.();
      const open = [...connections];
      const cut = timers.setTimeout(() => open.forEach(([c]) => c.terminate()), limits.closeGraceMs);
      await Promise.all(open.flatMap(([c, closed]) => [c.shutdown(), closed]));
      timers.clearTimeout(cut);
      wss.close();
    },
    stats() {
      let authenticated = 0;
      let bufferedBytes = 0;
      for (const c of connections.keys()) {
        if (c.client) authenticated++;
        bufferedBytes += c.bufferedBytes;
      }
      return { connections: connections.size, authenticated, ...counters, bufferedBytes };
    },
  };
}

function pathOf(url: string | undefined): string | null {
  try {
    return new URL(url ?? '/', 'http://localhost').pathname;
  } catch {
    return null;
  }
}

function refuseUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.on('error', () => {});
  socket.end(
    `HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : 'Service Unavailable'}\r\nConnection: close\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
