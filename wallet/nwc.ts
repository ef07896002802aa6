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
  feesPaidMsat: number;
}

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
  const parsed = NwcFile.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
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
  const e = err as { code?: string; message?: string };
  return e.code ? `${e.code}: ${e.message}` : String(e.message ?? err);
}

/** A connected NWC client; close it when done. */
export class NwcWallet {
  private constructor(private readonly client: import('@getalby/sdk').NWCClient, readonly relays: string[]) {}

  static async connect(uri: string): Promise<NwcWallet> {
    const { NWCClient } = await sdk();
    const valid = parseNwcUri(uri);
    const relays = new URL(valid).searchParams.getAll('relay').map((r) => { try { return new URL(r).host; } catch { return 'relay'; } });
    return new NwcWallet(new NWCClient({ nostrWalletConnectUrl: valid }), relays);
  }

  /** get_info + get_balance: proves the connection works. */
  async info(): Promise<NwcInfo> {
    try {
      const info = await quietly(() => this.client.getInfo());
      let balanceMsat: number | null = null;
      if (info.methods.includes('get_balance')) balanceMsat = (await quietly(() => this.client.getBalance())).balance;
      return { alias: info.alias ?? '', network: info.network ?? '', methods: info.methods, balanceMsat, relays: this.relays };
    } catch (err) {
      throw new NwcError(`NWC wallet did not answer get_info/get_balance: ${describe(err)}`, { cause: err });
    }
  }

  async balanceMsat(): Promise<number> {
    try {
      return (await quietly(() => this.client.getBalance())).balance;
    } catch (err) {
      throw new NwcError(`NWC get_balance failed: ${describe(err)}`, { cause: err });
    }
  }

  /**
   * Pay a BOLT11 invoice. Throws NwcError with `.nwcCode` (e.g. INSUFFICIENT_BALANCE: certainly
   * not paid). Other failures (timeouts) leave the outcome unknown: check the invoice's receiver.
   */
  async payInvoice(bolt11: string): Promise<NwcPayResult> {
    try {
      const r = await quietly(() => this.client.payInvoice({ invoice: bolt11 }));
      return { preimage: r.preimage, feesPaidMsat: r.fees_paid ?? 0 };
    } catch (err) {
      const code = (err as { code?: string }).code;
      const message = code === 'INSUFFICIENT_BALANCE'
        ? `the NWC wallet cannot pay this invoice: insufficient balance (${(err as Error).message})`
        : `the NWC wallet failed to pay: ${describe(err)}`;
      throw Object.assign(new NwcError(message, { cause: err }), { nwcCode: code });
    }
  }

  close(): void {
    this.client.close();
  }
}

/** Connect, run fn, always close. */
export async function withNwc<T>(uri: string, fn: (w: NwcWallet) => Promise<T>): Promise<T> {
  const w = await NwcWallet.connect(uri);
  try {
    return await fn(w);
  } finally {
    w.close();
  }
}
