// A minimal SOCKS5 proxy for tests (no auth, CONNECT only) that sends every connection to
// one target, whatever host name is asked for, as Tor would for a .onion address. It
// records the host names asked for; `refuse` makes it answer "host unreachable".
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TestSocksProxy {
  url: string;
  asked: string[];
  refuse: boolean;
  stop(): Promise<void>;
}

export async function startSocksProxy(target: { host: string; port: number }): Promise<TestSocksProxy> {
  const sockets = new Set<net.Socket>();
  const state: TestSocksProxy = { url: '', asked: [], refuse: false, stop: async () => {} };
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    client.once('data', () => {
      client.write(Buffer.from([5, 0]));
      client.once('data', (req) => {
        state.asked.push(req.subarray(5, 5 + req[4]).toString());
        if (state.refuse) {
          client.end(Buffer.from([5, 4, 0, 1, 0, 0, 0, 0, 0, 0]));
          return;
        }
        const upstream = net.connect(target.port, target.host, () => {
          client.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]));
          client.pipe(upstream).pipe(client);
        });
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        upstream.on('error', () => client.destroy());
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.url = `socks5://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.stop = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return state;
}
