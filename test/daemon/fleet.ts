// Many lightweight Routstr-like providers behind one HTTP server, for discovery at scale
// (tests and `npm run bench`). Provider i lives at http://127.0.0.1:<port>/p/<i> and
// answers /v1/info and /v1/models; each has a real Nostr key and publishes a real
// kind-38421 announcement. It counts how many providers are being probed at once.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';

useWebSocketImplementation(WebSocket);

export interface Fleet {
  urls: string[];
  pubkeys: string[];
  /** Most providers with a request in progress at the same moment. */
  maxActiveProviders(): number;
  requests(): number;
  /** Publish every provider's announcement to the relay (one connection). */
  announce(relayUrl: string): Promise<void>;
  stop(): Promise<void>;
}

export interface FleetOptions {
  providers: number;
  modelsPerProvider: number;
  /** Delay before each answer, so that probes overlap (ms). */
  delayMs?: number;
  mint?: string;
}

export async function startFleet(o: FleetOptions): Promise<Fleet> {
  const keys = Array.from({ length: o.providers }, () => generateSecretKey());
  const pubkeys = keys.map((k) => getPublicKey(k));
  const mint = o.mint ?? 'http://127.0.0.1:3338';
  const bodies = pubkeys.map((_, i) =>
    JSON.stringify({
      data: Array.from({ length: o.modelsPerProvider }, (_, j) => ({
        id: `model-${j}`,
        name: `Model ${j}`,
        alias_ids: [`vendor/model-${j}`],
        context_length: 8192,
        sats_pricing: { prompt: 0.00001 * (1 + ((i + j) % 17)), completion: 0.00003 * (1 + ((i * j) % 13)), request: 0, max_cost: 50 },
      })),
    }),
  );
  const active = new Map<number, number>();
  let maxActive = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    const m = /^\/p\/(\d+)\/v1\/(models|info)$/.exec(req.url ?? '');
    const i = m ? Number(m[1]) : -1;
    if (!m || i >= o.providers) {
      res.writeHead(404).end();
      return;
    }
    requests++;
    active.set(i, (active.get(i) ?? 0) + 1);
    maxActive = Math.max(maxActive, active.size);
    setTimeout(() => {
      const n = (active.get(i) ?? 1) - 1;
      if (n === 0) active.delete(i);
      else active.set(i, n);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(m[2] === 'models' ? bodies[i] : JSON.stringify({ name: `Fleet ${i}`, version: '0.4.5', mints: [mint] }));
    }, o.delayMs ?? 0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const urls = pubkeys.map((_, i) => `${base}/p/${i}`);
  return {
    urls,
    pubkeys,
    maxActiveProviders: () => maxActive,
    requests: () => requests,
    async announce(relayUrl) {
      const relay = await Relay.connect(relayUrl);
      // 200 events at once on a busy machine can take longer than nostr-tools' 4.4 s default.
      relay.publishTimeout = 60_000;
      try {
        const now = Math.floor(Date.now() / 1000);
        await Promise.all(
          keys.map((k, i) =>
            relay.publish(
              finalizeEvent(
                { kind: 38421, created_at: now - i, tags: [['d', pubkeys[i].slice(0, 12)], ['u', urls[i]], ['mint', mint], ['version', '0.4.5']], content: JSON.stringify({ name: `Fleet ${i}`, about: 'x' }) },
                k,
              ),
            ),
          ),
        );
      } finally {
        relay.close();
      }
    },
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
