// A Cashu mint for the local test world: NUT-00..09 and NUT-12 over HTTP on 127.0.0.1,
// paid and paying through the simulated LightningNetwork, with fault knobs for tests.
// cashu-ts' Wallet works against it unmodified.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex } from '@noble/curves/utils.js';
import type { Clock, LightningNetwork } from './lightning.ts';
import { MintLedger, type MeltQuoteState, type MintQuoteState, type ProofState, type UnitStats } from './mint/ledger.ts';
import type { KeysetIdVersion, Unit } from './mint/keys.ts';
import { createRequestHandler, type MintKnobs, type MintRateLimit } from './mint/server.ts';

export { MintError, MintErrorCode } from './mint/errors.ts';
export { splitPowersOfTwo } from './mint/ledger.ts';
export type { KeysetIdVersion, MeltQuoteState, MintQuoteState, MintRateLimit, ProofState, Unit, UnitStats, MintKnobs };

export interface MintOptions {
  lightning: LightningNetwork;
  /** One keyset per unit; default ['sat']. */
  units?: Unit[];
  /** NUT-02 input fee of the initial keysets, parts per thousand per input; default 0. */
  inputFeePpk?: number;
  /** NUT-02 keyset id version: '00' (default; nutshell and most mints in the wild) or '01'. */
  keysetIdVersion?: KeysetIdVersion;
  clock?: Clock;
  name?: string;
  /** Lifetime of mint quotes (and their invoices) and melt quotes; default 3600 s. */
  quoteExpirySec?: number;
  /** Largest mint or melt amount, in the quote's unit; default 1e9. */
  maxAmount?: number;
  /** Melt fee reserve for an invoice of this many msat; default max(2000 msat, 1%), never below the network fee. */
  feeReserveMsat?: (amountMsat: number) => number;
  /** Unexpected errors (bugs) are reported here; default console.error. */
  onError?: (err: unknown) => void;
  /** NUT-09 restore; default true. false: /v1/info omits nut 9 and POST /v1/restore is 404, like a mint without it. */
  restore?: boolean;
}

export interface KeysetInfo {
  id: string;
  unit: Unit;
  active: boolean;
  inputFeePpk: number;
}

export interface TestMint {
  readonly url: string;
  readonly name: string;
  /** The mint's Lightning node id (its invoices are signed by it). */
  readonly nodeId: string;
  readonly knobs: MintKnobs;
  /** down: close the listening socket and every connection (ECONNREFUSED), state kept; up: listen on the same port. */
  setDown(down: boolean): Promise<void>;
  readonly isDown: boolean;
  /** New active keyset for the unit (default sat); the old one still redeems but no longer signs. Returns the new id. */
  rotateKeyset(unit?: Unit, inputFeePpk?: number): string;
  activeKeysetId(unit?: Unit): string;
  /** Melts arriving from now on wait, inputs PENDING and quote PENDING, until release() is called. */
  holdMelts(): () => void;
  keysets(): KeysetInfo[];
  stats(unit?: Unit): UnitStats;
  proofState(secret: string): ProofState;
  isSpent(secret: string): boolean;
  mintQuoteState(quoteId: string): MintQuoteState | undefined;
  meltQuoteState(quoteId: string): MeltQuoteState | undefined;
  /** Requests received per route, e.g. {"POST /v1/swap": 3}; failed and knob-refused ones included. */
  requestCounts(): Record<string, number>;
  stop(): Promise<void>;
}

export async function startMint(opts: MintOptions): Promise<TestMint> {
  const name = opts.name ?? 'testmint';
  const node = opts.lightning.node(`mint:${name}`);
  const knobs: MintKnobs = { latencyMs: 0, failNext: 0, loseResponseNext: 0, meltDelayMs: 0, onlyRoute: null, rateLimit: null };
  const clock = opts.clock ?? Date.now;
  const ledger = new MintLedger({
    lightning: opts.lightning,
    node,
    units: opts.units ?? ['sat'],
    inputFeePpk: opts.inputFeePpk ?? 0,
    keysetIdVersion: opts.keysetIdVersion ?? '00',
    clock,
    quoteExpirySec: opts.quoteExpirySec ?? 3600,
    maxAmount: opts.maxAmount ?? 1_000_000_000,
    feeReserveMsat: opts.feeReserveMsat,
    knobs,
  });
  const counts = new Map<string, number>();
  const identity = { name, pubkey: bytesToHex(secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), true)), description: `satroute test mint ${name}`, restore: opts.restore ?? true };
  const handler = createRequestHandler(ledger, knobs, identity, counts, opts.onError ?? ((err) => console.error('test mint error', err)), clock);
  const server: Server = createServer((req, res) => void handler(req, res));
  await listen(server, 0);
  const port = (server.address() as AddressInfo).port;
  let down = false;
  let stopped = false;

  const unitDefault = (unit?: Unit): Unit => unit ?? ledger.units[0];
  return {
    url: `http://127.0.0.1:${port}`,
    name,
    nodeId: node.id,
    knobs,
    get isDown() {
      return down;
    },
    async setDown(value: boolean) {
      if (stopped || value === down) return;
      down = value;
      if (value) await close(server);
      else await listen(server, port);
    },
    rotateKeyset: (unit, inputFeePpk) => ledger.rotateKeyset(unitDefault(unit), inputFeePpk).id,
    activeKeysetId: (unit) => ledger.activeKeyset(unitDefault(unit)).id,
    holdMelts: () => ledger.holdMelts(),
    keysets: () => [...ledger.keysets.values()].map((k) => ({ id: k.id, unit: k.unit, active: k.active, inputFeePpk: k.inputFeePpk })),
    stats: (unit) => ledger.stats(unitDefault(unit)),
    proofState: (secret) => ledger.proofState(secret),
    isSpent: (secret) => ledger.proofState(secret) === 'SPENT',
    mintQuoteState: (id) => ledger.mintQuoteState(id),
    meltQuoteState: (id) => ledger.meltQuoteState(id),
    requestCounts: () => Object.fromEntries(counts),
    async stop() {
      if (stopped) return;
      stopped = true;
      ledger.close();
      if (!down) await close(server);
    },
  };
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function close(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  // Let clients see their pooled keep-alive sockets close, so their next request meets a
  // refused connection rather than a reset one.
  await new Promise((resolve) => setTimeout(resolve, 10));
}
