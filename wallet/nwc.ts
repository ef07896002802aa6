// Nostr Wallet Connect (NIP-47) through @getalby/sdk: the connection string lives in
// <dataDir>/nwc.json (mode 0600) and is never logged; funding pays mint invoices through it.
import fs from 'node:fs';
import path from 'node:path';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { NwcError } from './errors.ts';

/** nostr+walletconnect://<64-hex pubkey>?relay=...&secret=<64-hex> */
const NwcUri = z.string().trim().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'nostr+walletconnect:' && /^[0-9a-f]{64}$/i.test(u.hostname || u.pathname.replace(/^\/+/, ''))
      && /^[0-9a-f]{64}$/i.test(u.searchParams.get('secret') ?? '') && u.searchParams.getAll('relay').length > 0;
  } catch {
    return false;
  }
}, 'not a nostr+walletconnect:// URI with a wallet pubkey, relay and secret');

const NwcFile = z.object({ uri: NwcUri, addedAt: z.number().int(), alias: z.string().optional() });
type NwcFile = z.infer<typeof NwcFile>;

export interface NwcInfo {
  alias: string;
  network: string;
  methods: string[];
  balanceMsat: number | null;
  /** Relay host(s) only: safe to print. */
  relays: string[];
}

export interface NwcPayResult {
  preimage: string;
  /** What the wallet says the routing cost, msat; null when it did not say (or said nonsense). */
  feesPaidMsat: number | null;
}

/** How long a call may take before it fails with NwcError, whatever the NWC library does. */
export interface NwcTimeouts {
  /** get_info, get_balance; default 20 s. */
  queryMs?: number;
  /** pay_invoice; default 90 s (the library gives up at 60 s). */
  payMs?: number;
}

// What a NIP-47 wallet answers, as far as satroute reads it. A wallet service is another
// program on another machine: its answers are parsed like any other untrusted input.
const Msat = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const InfoResult = z.object({
  alias: z.string().max(256).optional().catch(undefined),
  network: z.string().max(64).optional().catch(undefined),
  methods: z.array(z.string().max(64)).max(100),
});
const BalanceResult = z.object({ balance: Msat });
const PayResult = z.object({ preimage: z.string().regex(/^[0-9a-fA-F]{64}$/), fees_paid: Msat.optional().catch(undefined) });

export function nwcFilePath(dataDir: string): string {
  return path.join(dataDir, 'nwc.json');
}

/** Validate a connection string (throws NwcError without echoing the secret). */
export function parseNwcUri(uri: string): string {
  const r = NwcUri.safeParse(uri);
  if (!r.success) throw new NwcError('invalid NWC connection string: expected nostr+walletconnect://<pubkey>?relay=<wss://...>&secret=<hex>');
  return r.data;
}

/** Store the connection (0600, atomic replace). */
export function saveNwc(dataDir: string, uri: string, alias?: string, now = Date.now()): void {
  const file = nwcFilePath(dataDir);
  const tmp = `${file}.${process.pid}.tmp`;
  const body: NwcFile = { uri: parseNwcUri(uri), addedAt: now, ...(alias ? { alias } : {}) };
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(tmp, JSON.stringify(body) + '\n', { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

/** The stored connection string, or null when none is configured. */
export function loadNwcUri(dataDir: string): string | null {
  const file = nwcFilePath(dataDir);
  if (!fs.existsSync(file)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    raw = undefined; // unreadable or not JSON: the same answer as a wrong shape (and the secret is never quoted)
  }
  const parsed = NwcFile.safeParse(raw);
  if (!parsed.success) throw new NwcError(`${file} is not a valid NWC connection file`);
  return parsed.data.uri;
}

export function removeNwc(dataDir: string): boolean {
  const file = nwcFilePath(dataDir);
  if (!fs.existsSync(file)) return false;
  fs.unlinkSync(file);
  return true;
}

async function sdk(): Promise<typeof import('@getalby/sdk')> {
  // @getalby/sdk bundles nostr-tools, which captures the global WebSocket when first imported.
  const g = globalThis as { WebSocket?: unknown };
  if (g.WebSocket === undefined) g.WebSocket = WebSocket;
  return import('@getalby/sdk');
}

type NWCClientClass = typeof import('@getalby/sdk').NWCClient;
let safeClient: NWCClientClass | undefined;

/**
 * NWCClient whose reply decryption cannot throw. @getalby/sdk 8 decrypts a reply inside an
 * async event callback after clearing its timeout: a reply it cannot decrypt (or one that
 * decrypts to `null`) became an unhandled rejection - fatal to the process - and left the call
 * waiting forever. Here such a reply reads as '' (not JSON), which the library refuses.
 */
async function safeClientClass(): Promise<NWCClientClass> {
  const { NWCClient } = await sdk();
  safeClient ??= class SafeNWCClient extends NWCClient {
    override async decrypt(pubkey: string, content: string): Promise<string> {
      try {
        const text = await super.decrypt(pubkey, content);
        const value: unknown = JSON.parse(text);
        return typeof value === 'object' && value !== null && !Array.isArray(value) ? text : '';
      } catch {
        return '';
      }
    }
  };
  return safeClient;
}

/** Reject with NwcError when `promise` has not settled within `ms`. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new NwcError(`the NWC wallet did not answer ${what} within ${ms} ms`), { nwcCode: 'TIMEOUT' })), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function parsed<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new NwcError(`the NWC wallet answered ${what} with something that is not a valid answer (${r.error.issues[0]?.path.join('.') || 'result'})`);
  return r.data;
}

/**
 * @getalby/sdk prints every failed request with console.error and a stack trace; we report the
 * failure ourselves as one line, so drop just those lines while a call runs.
 */
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const original = console.error;
  console.error = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].startsWith('Failed to request')) return;
    original(...args);
  };
  try {
    return await fn();
  } finally {
    console.error = original;
  }
}

function describe(err: unknown): string {
  let text: string;
  try {
    const e = err as { code?: unknown; message?: unknown };
    text = e?.code ? `${String(e.code)}: ${String(e.message)}` : String(e?.message ?? err);
  } catch {
    text = 'unknown error';
  }
  return text.length > 300 ? `${text.slice(0, 300)}...` : text; // a wallet's error message is its own text
}

/** A connected NWC client; close it when done. */
export class NwcWallet {
  private readonly queryMs: number;
  private readonly payMs: number;

  private constructor(private readonly client: import('@getalby/sdk').NWCClient, readonly relays: string[], timeouts: NwcTimeouts) {
    this.queryMs = timeouts.queryMs ?? 20_000;
    this.payMs = timeouts.payMs ?? 90_000;
  }

  static async connect(uri: string, timeouts: NwcTimeouts = {}): Promise<NwcWallet> {
    const Client = await safeClientClass();
    const valid = parseNwcUri(uri);
    const relays = new URL(valid).searchParams.getAll('relay').map((r) => { try { return new URL(r).host; } catch { return 'relay'; } });
    return new NwcWallet(new Client({ nostrWalletConnectUrl: valid }), relays, timeouts);
  }

  /** get_info + get_balance: proves the connection works. */
  async info(): Promise<NwcInfo> {
    try {
      const info = parsed(InfoResult, await within(this.queryMs, 'get_info', quietly(() => this.client.getInfo())), 'get_info');
      let balanceMsat: number | null = null;
      if (info.methods.includes('get_balance')) balanceMsat = await this.balanceMsat();
      return { alias: info.alias ?? '', network: info.network ?? '', methods: info.methods, balanceMsat, relays: this.relays };
    } catch (err) {
      throw new NwcError(`NWC wallet did not answer get_info/get_balance: ${describe(err)}`, { cause: err });
    }
  }

  async balanceMsat(): Promise<number> {
    let raw: unknown;
    try {
      raw = await within(this.queryMs, 'get_balance', quietly(() => this.client.getBalance()));
    } catch (err) {
      throw new NwcError(`NWC get_balance failed: ${describe(err)}`, { cause: err });
    }
    return parsed(BalanceResult, raw, 'get_balance').balance;
  }

  /**
   * Pay a BOLT11 invoice. Throws NwcError with `.nwcCode` (e.g. INSUFFICIENT_BALANCE: certainly
   * not paid). Other failures (timeouts) leave the outcome unknown: check the invoice's receiver.
   */
  async payInvoice(bolt11: string): Promise<NwcPayResult> {
    let raw: unknown;
    try {
      raw = await within(this.payMs, 'pay_invoice', quietly(() => this.client.payInvoice({ invoice: bolt11 })));
    } catch (err) {
      const code = (err as { code?: string }).code;
      const message = code === 'INSUFFICIENT_BALANCE'
        ? `the NWC wallet cannot pay this invoice: insufficient balance (${describe(err)})`
        : `the NWC wallet failed to pay: ${describe(err)}`;
      throw Object.assign(new NwcError(message, { cause: err }), { nwcCode: code });
    }
    // An answer that is not a payment leaves the outcome unknown, like a timeout: the caller asks the invoice's receiver.
    const r = parsed(PayResult, raw, 'pay_invoice');
    return { preimage: r.preimage, feesPaidMsat: r.fees_paid ?? null };
  }

  close(): void {
    this.client.close();
  }
}

/** Connect, run fn, always close. */
export async function withNwc<T>(uri: string, fn: (w: NwcWallet) => Promise<T>, timeouts?: NwcTimeouts): Promise<T> {
  const w = await NwcWallet.connect(uri, timeouts);
  try {
    return await fn(w);
  } finally {
    w.close();
  }
}
