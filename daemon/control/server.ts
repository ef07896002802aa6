// The local control channel: a Unix socket in the data directory through which CLI commands
// reach the running daemon (one writer at a time: the daemon owns the wallet while it runs).
// Protocol: one JSON object per line. Request {"id","method","params"}; reply {"id","result"}
// or {"id","error":{"message","code"}}. The socket is 0600 inside a 0700 directory.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export type ControlHandler = (params: any) => Promise<unknown> | unknown;
export type ControlHandlers = Record<string, ControlHandler>;

/** No daemon answers on this data directory's control socket. */
export class DaemonNotRunningError extends Error {
  override name = 'DaemonNotRunningError';
}

/** The daemon answered with an error (its message is meant for the user). */
export class ControlCallError extends Error {
  override name = 'ControlCallError';
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

export function controlSocketPath(dataDir: string): string {
  return path.join(dataDir, 'control.sock');
}

const MAX_LINE_BYTES = 1 << 20;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/** Serve these handlers on `<dataDir>/control.sock`. A stale socket file is replaced. */
export async function startControlServer(dataDir: string, handlers: ControlHandlers): Promise<ControlServer> {
  const socketPath = controlSocketPath(dataDir);
  if (fs.existsSync(socketPath)) {
    if (await isAnswering(socketPath)) throw new Error(`another satroute daemon is already running on ${dataDir}`);
    fs.unlinkSync(socketPath);
  }
  const connections = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_LINE_BYTES) return socket.destroy();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        void answer(line).then((reply) => socket.writable && socket.write(JSON.stringify(reply) + '\n'));
      }
    });
  });

  async function answer(line: string): Promise<object> {
    let id: unknown = null;
    try {
      const msg = JSON.parse(line) as { id?: unknown; method?: unknown; params?: unknown };
      id = msg.id ?? null;
      const handler = typeof msg.method === 'string' && Object.hasOwn(handlers, msg.method) ? handlers[msg.method] : undefined;
      if (!handler) return { id, error: { message: `unknown method ${String(msg.method)}`, code: 'unknown_method' } };
      return { id, result: (await handler(msg.params ?? {})) ?? null };
    } catch (err) {
      const e = err as Error & { code?: unknown };
      return { id, error: { message: e.message ?? String(err), code: typeof e.code === 'string' ? e.code : e.name } };
    }
  }

  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(socketPath, 0o600);
  return {
    path: socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.destroy();
        server.close(() => resolve());
      }),
  };
}

function isAnswering(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

let nextId = 1;

/**
 * Call a method on the running daemon. Throws DaemonNotRunningError when nothing listens
 * (the caller then works in-process), ControlCallError when the daemon reports an error.
 */
export function callDaemon<T = unknown>(dataDir: string, method: string, params: unknown = {}, timeoutMs = 120_000): Promise<T> {
  const socketPath = controlSocketPath(dataDir);
  if (!fs.existsSync(socketPath)) return Promise.reject(new DaemonNotRunningError(`no daemon running on ${dataDir}`));
  return new Promise<T>((resolve, reject) => {
    const id = nextId++;
    const socket = net.connect(socketPath);
    let buffer = '';
    let connected = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ControlCallError(`the daemon did not answer ${method} within ${Math.round(timeoutMs / 1000)} s`, 'timeout'));
    }, timeoutMs);
    const finish = (fn: () => void) => {
      clearTimeout(timer);
      socket.destroy();
      fn();
    };
    socket.setEncoding('utf8');
    socket.once('connect', () => {
      connected = true;
      socket.write(JSON.stringify({ id, method, params }) + '\n');
    });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      const reply = JSON.parse(buffer.slice(0, nl)) as { result?: T; error?: { message: string; code?: string } };
      finish(() => (reply.error ? reject(new ControlCallError(reply.error.message, reply.error.code)) : resolve(reply.result as T)));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      finish(() =>
        !connected && (err.code === 'ECONNREFUSED' || err.code === 'ENOENT')
          ? reject(new DaemonNotRunningError(`no daemon running on ${dataDir}`))
          : reject(err),
      );
    });
    socket.once('close', () => finish(() => reject(new ControlCallError(`the daemon closed the connection during ${method}`, 'closed'))));
  });
}
