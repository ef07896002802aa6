// A fetch that goes through a SOCKS5 proxy (e.g. Tor for .onion providers). The proxy
// resolves host names itself (address type 3), which is what .onion needs. No auth.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';

export class SocksError extends Error {
  override name = 'SocksError';
}

/** Parse `socks5://host:port` (or `socks5h://`, or bare `host:port`). */
export function parseSocksUrl(proxy: string): { host: string; port: number } {
  const url = new URL(/^[a-z0-9]+:\/\//i.test(proxy) ? proxy : `socks5://${proxy}`);
  if (url.protocol !== 'socks5:' && url.protocol !== 'socks5h:' && url.protocol !== 'socks:') throw new SocksError(`unsupported proxy ${proxy}: only socks5 is supported`);
  const port = Number(url.port || 1080);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port };
}

/** Open a TCP tunnel to host:port through the SOCKS5 proxy. */
export function socksConnect(proxy: { host: string; port: number }, host: string, port: number, timeoutMs = 30_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxy.port, proxy.host);
    let buf = Buffer.alloc(0);
    let step: 'greeting' | 'connect' = 'greeting';
    const fail = (msg: string) => {
      socket.destroy();
      reject(new SocksError(msg));
    };
    socket.setTimeout(timeoutMs, () => fail('SOCKS proxy timed out'));
    socket.once('error', (err) => fail(`SOCKS proxy: ${err.message}`));
    socket.once('connect', () => socket.write(Buffer.from([5, 1, 0])));
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (step === 'greeting') {
        if (buf.length < 2) return;
        if (buf[0] !== 5 || buf[1] !== 0) return fail('SOCKS proxy refused no-auth');
        buf = buf.subarray(2);
        step = 'connect';
        const name = Buffer.from(host, 'utf8');
        if (name.length > 255) return fail('host name too long for SOCKS');
        socket.write(Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([port >> 8, port & 0xff])]));
      }
      if (step === 'connect') {
        if (buf.length < 5) return;
        if (buf[1] !== 0) return fail(`SOCKS connect to ${host}:${port} failed (code ${buf[1]})`);
        const atyp = buf[3];
        const len = atyp === 1 ? 4 : atyp === 4 ? 16 : atyp === 3 ? 1 + buf[4] : -1;
        if (len < 0) return fail('SOCKS reply with an unknown address type');
        if (buf.length < 4 + len + 2) return;
        socket.off('data', onData);
        socket.removeAllListeners('error');
        socket.removeAllListeners('timeout');
        socket.setTimeout(0);
        const rest = buf.subarray(4 + len + 2);
        if (rest.length) socket.unshift(rest);
        resolve(socket);
      }
    };
    socket.on('data', onData);
  });
}

type Callback = (err: Error | null, socket?: net.Socket) => void;
type ConnectOptions = { host?: string | null; port?: number | string | null; servername?: string };

// An agent whose connections are tunnels through the proxy (TLS on top for https).
function socksAgent(proxy: { host: string; port: number }, secure: boolean): http.Agent {
  const agent = secure ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false });
  const connect = (options: ConnectOptions, cb: Callback): undefined => {
    const host = String(options.host);
    socksConnect(proxy, host, Number(options.port ?? (secure ? 443 : 80))).then((raw) => {
      if (!secure) return cb(null, raw);
      const s = tls.connect({ socket: raw, servername: options.servername ?? host });
      s.once('secureConnect', () => cb(null, s));
      s.once('error', (err) => cb(err));
    }, cb);
    return undefined;
  };
  (agent as unknown as { createConnection: typeof connect }).createConnection = connect;
  return agent;
}

/** For provider calls (protocol/provider-call.ts `agentFor`): a tunnel through the proxy for .onion URLs, else undefined. */
export function socksAgentFor(proxy: string): (url: URL) => http.Agent | undefined {
  const p = parseSocksUrl(proxy);
  const httpAgent = socksAgent(p, false);
  const httpsAgent = socksAgent(p, true);
  return (url) => (url.hostname.endsWith('.onion') ? (url.protocol === 'https:' ? httpsAgent : httpAgent) : undefined);
}

/** A fetch (GET/POST with string bodies) that tunnels every request through a SOCKS5 proxy. */
export function socksFetch(proxy: string): typeof fetch {
  const p = parseSocksUrl(proxy);
  const httpAgent = socksAgent(p, false);
  const httpsAgent = socksAgent(p, true);
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const mod = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = v));
    const signal = init.signal ?? undefined;
    return await new Promise<Response>((resolve, reject) => {
      const req = mod.request(url, { method: init.method ?? 'GET', headers, agent: url.protocol === 'https:' ? httpsAgent : httpAgent, signal }, (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
        const status = res.statusCode ?? 502;
        const body = status === 204 || status === 304 ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
        resolve(new Response(body, { status, statusText: res.statusMessage, headers: h }));
      });
      req.once('error', reject);
      if (typeof init.body === 'string') req.end(init.body);
      else req.end();
    });
  }) as typeof fetch;
}
