// A real Nostr relay for tests: @nostr-relay/core with its zod validator and SQLite event
// store, behind a `ws` server on 127.0.0.1. It can be taken down (every connection dropped,
// the port closed) and brought back on the same port with the same stored events.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NostrRelay } from '@nostr-relay/core';
import { EventRepositorySqlite } from '@nostr-relay/event-repository-sqlite';
import { Validator } from '@nostr-relay/validator';
import type { Logger } from '@nostr-relay/common';
import { WebSocket, WebSocketServer, type RawData } from 'ws';

export interface TestRelay {
  /** ws://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** Stop for good: drop connections, close the port, free the event store. */
  stop(): Promise<void>;
  /** Simulate a crash: drop every connection and close the port; stored events are kept. */
  down(): Promise<void>;
  /** Listen again on the same port, with the same events. */
  up(): Promise<void>;
  /** Open client connections right now. */
  connections(): number;
  /** Whether the relay is accepting connections. */
  isUp(): boolean;
}

export interface RelayOptions {
  /** Port to bind on 127.0.0.1; default 0 (any free port). */
  port?: number;
  /** SQLite file for the events; default in-memory. */
  file?: string;
  /** Receives the relay's log lines; default silent. */
  logger?: Logger;
}

const silentLogger: Logger = { setLogLevel() {}, debug() {}, info() {}, warn() {}, error() {} };

/** Start a relay on 127.0.0.1. */
export async function startRelay(opts: RelayOptions = {}): Promise<TestRelay> {
  const repo = new EventRepositorySqlite(opts.file ?? ':memory:');
  await repo.init();
  const relay = new NostrRelay(repo, {
    logger: opts.logger ?? silentLogger,
    // Caches would serve stale query results and remember a verdict per event id, so a
    // forged copy of a valid event would be accepted from the cache.
    filterResultCacheTtl: 0,
    eventHandlingResultCacheTtl: 0,
    maxSubscriptionsPerClient: 100,
  });
  const validator = new Validator();
  const clients = new Set<WebSocket>();
  let server: Server | undefined;
  let wss: WebSocketServer | undefined;
  let port = opts.port ?? 0;
  let stopped = false;

  const onConnection = (ws: WebSocket, req: IncomingMessage) => {
    clients.add(ws);
    relay.handleConnection(ws, req.socket.remoteAddress);
    // One client's messages are handled in order (a REQ sent before an EVENT is live first).
    let queue = Promise.resolve();
    ws.on('message', (data: RawData) => {
      queue = queue.then(() => handle(ws, data));
    });
    ws.on('close', () => {
      clients.delete(ws);
      relay.handleDisconnect(ws);
    });
    ws.on('error', () => ws.terminate());
  };

  const handle = async (ws: WebSocket, data: RawData) => {
    try {
      const message = await validator.validateIncomingMessage(data);
      await relay.handleMessage(ws, message);
    } catch (err) {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(['NOTICE', `invalid: ${(err as Error).message}`]));
    }
  };

  // NIP-11 relay information over plain HTTP on the same port.
  const onHttp = (req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/nostr+json', 'access-control-allow-origin': '*' });
    res.end(JSON.stringify({ name: 'satroute test relay', supported_nips: [1, 11, 33], software: '@nostr-relay/core' }));
    void req;
  };

  const listen = async () => {
    server = createServer(onHttp);
    wss = new WebSocketServer({ server });
    wss.on('connection', onConnection);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(port, '127.0.0.1', () => {
        server!.off('error', reject);
        resolve();
      });
    });
    port = (server.address() as AddressInfo).port;
  };

  const close = async () => {
    const s = server;
    const w = wss;
    server = undefined;
    wss = undefined;
    if (!s || !w) return;
    for (const ws of clients) ws.terminate();
    clients.clear();
    await new Promise<void>((resolve) => w.close(() => resolve()));
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  await listen();

  return {
    get url() {
      return `ws://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    connections: () => clients.size,
    isUp: () => server !== undefined,
    down: close,
    up: async () => {
      if (stopped) throw new Error('relay was stopped');
      if (!server) await listen();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await close();
      await relay.destroy();
      await repo.destroy();
    },
  };
}
