// Trusted mints and one loaded cashu-ts Wallet per (mint, unit). Everything that talks to a
// mint goes through here, so errors are mapped once (down vs refused) and keysets are
// refreshed once when a mint rotates them.
import {
  HttpResponseError, MintOperationError, NetworkError, OutputData, Wallet, normalizeMintUrl,
  type OutputDataLike, type Proof, type SerializedOutputData,
} from '@cashu/cashu-ts';
import { nullLogger, type Logger } from '../protocol/logger.ts';
import { MintRejectedError, MintUnavailableError, UnsupportedUnitError, UntrustedMintError, WalletError } from './errors.ts';
import type { Clock } from './store.ts';

/** NUT error codes the wallet branches on. */
export const NUT_CODE = {
  PROOFS_ALREADY_SPENT: 11001,
  PROOFS_PENDING: 11002,
  OUTPUTS_ALREADY_SIGNED: 11003,
  KEYSET_UNKNOWN: 12001,
  KEYSET_INACTIVE: 12002,
  QUOTE_NOT_PAID: 20001,
  QUOTE_ALREADY_ISSUED: 20002,
  LIGHTNING_PAYMENT_FAILED: 20004,
  QUOTE_PENDING: 20005,
  INVOICE_ALREADY_PAID: 20006,
  QUOTE_EXPIRED: 20007,
} as const;

/**
 * Items (Ys, outputs) sent in one mint request: Nutshell refuses an array longer than its
 * `mint_max_request_length` (default 1000) on every route, so bulk calls go in batches of this.
 */
export const MINT_MAX_REQUEST_ITEMS = 1000;

/** `items` in consecutive batches of at most MINT_MAX_REQUEST_ITEMS. */
export function mintBatches<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += MINT_MAX_REQUEST_ITEMS) out.push(items.slice(i, i + MINT_MAX_REQUEST_ITEMS));
  return out;
}

export interface MintRegistryOptions {
  /** Trusted mint URLs (config `mints` / SATROUTE_MINTS). */
  trusted: readonly string[];
  logger?: Logger;
  clock?: Clock;
  /** Reload keysets at most this often when asked to (keyset rotation); default 60 s. */
  keysetRefreshMs?: number;
}

export interface KeysetSummary {
  id: string;
  unit: string;
  active: boolean;
  inputFeePpk: number;
}

/** Canonical forms already worked out: the request path asks for the same few mints several times a request, and each is a URL parse. */
const mintKeys = new Map<string, string>();
const MINT_KEYS_MAX = 256;

/** Canonical form of a mint URL (what the database stores). Throws for a string that is no mint URL. */
export function mintKey(url: string): string {
  let key = mintKeys.get(url);
  if (key === undefined) {
    key = normalizeMintUrl(url);
    // Strings come from tokens too (anything a provider sends): keep the memory bounded.
    if (mintKeys.size >= MINT_KEYS_MAX) mintKeys.clear();
    mintKeys.set(url, key);
  }
  return key;
}

/** mintKey, or null for a string cashu-ts does not take as a mint URL (a token may name anything). */
function keyOrNull(url: string): string | null {
  try {
    return mintKey(url);
  } catch {
    return null;
  }
}

/** Did the mint certainly refuse (nothing happened), as opposed to an unknown outcome? */
export function isRejection(err: unknown): err is MintRejectedError {
  return err instanceof MintRejectedError;
}

/** Map a cashu-ts failure to the wallet's error tree. */
export function mapMintError(mintUrl: string, err: unknown): Error {
  if (err instanceof WalletError) return err;
  if (err instanceof MintOperationError) return new MintRejectedError(`mint ${mintUrl} refused: ${err.message}`, err.code);
  if (err instanceof HttpResponseError && err.status >= 400 && err.status < 500 && err.status !== 429) {
    return new MintRejectedError(`mint ${mintUrl} refused (HTTP ${err.status}): ${err.message}`);
  }
  if (err instanceof NetworkError || err instanceof HttpResponseError) return new MintUnavailableError(mintUrl, err);
  // cashu-ts raises CTSError for responses it cannot use (missing signatures, bad DLEQ): treat
  // the outcome as unknown, never as "nothing happened".
  return new MintUnavailableError(mintUrl, err);
}

export function serializeOutputs(outputs: readonly OutputDataLike[]): string {
  return JSON.stringify(outputs.map((o) => OutputData.serialize(o)));
}

export function deserializeOutputs(json: string): OutputData[] {
  return (JSON.parse(json) as SerializedOutputData[]).map((s) => OutputData.deserialize(s));
}

export class MintRegistry {
  private readonly trustedSet = new Set<string>();
  private readonly wallets = new Map<string, { wallet: Promise<Wallet>; loadedAt: number }>();
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly refreshMs: number;

  constructor(opts: MintRegistryOptions) {
    for (const url of opts.trusted) this.trustedSet.add(mintKey(url));
    this.logger = opts.logger ?? nullLogger;
    this.clock = opts.clock ?? Date.now;
    this.refreshMs = opts.keysetRefreshMs ?? 60_000;
  }

  get trusted(): string[] {
    return [...this.trustedSet];
  }

  isTrusted(url: string): boolean {
    const key = keyOrNull(url);
    return key !== null && this.trustedSet.has(key);
  }

  /** The canonical URL of a trusted mint; throws UntrustedMintError otherwise (a string that is no URL included). */
  assertTrusted(url: string): string {
    const key = keyOrNull(url);
    if (key === null || !this.trustedSet.has(key)) throw new UntrustedMintError(key ?? JSON.stringify(String(url).slice(0, 200)));
    return key;
  }

  /** Trust a mint from now on (the caller persists the config). */
  trust(url: string): string {
    const key = keyOrNull(url);
    if (key === null) throw new WalletError(`not a mint URL: ${JSON.stringify(String(url).slice(0, 200))}`);
    this.trustedSet.add(key);
    return key;
  }

  /** The first trusted mint: where funding goes unless told otherwise. */
  defaultMint(): string {
    const first = this.trustedSet.values().next();
    if (first.done) throw new WalletError('no trusted mint configured: set "mints" in satroute.json or SATROUTE_MINTS');
    return first.value;
  }

  /**
   * A loaded cashu-ts Wallet for a trusted mint and unit (cached). It verifies DLEQ proofs on
   * every signature it receives (requireSigDleq). Throws MintUnavailableError if keys cannot load.
   */
  async wallet(mintUrl: string, unit = 'sat'): Promise<Wallet> {
    const mint = this.assertTrusted(mintUrl);
    const k = `${mint} ${unit}`;
    const cached = this.wallets.get(k);
    if (cached) return cached.wallet;
    const entry = { wallet: this.load(mint, unit), loadedAt: this.clock() };
    this.wallets.set(k, entry);
    entry.wallet.catch(() => this.wallets.get(k) === entry && this.wallets.delete(k));
    return entry.wallet;
  }

  /** Reload keysets (after a rotation, an unknown keyset id, or a KEYSET_INACTIVE refusal). */
  async refresh(mintUrl: string, unit = 'sat', force = false): Promise<Wallet> {
    const mint = this.assertTrusted(mintUrl);
    const k = `${mint} ${unit}`;
    const cached = this.wallets.get(k);
    if (cached && !force && this.clock() - cached.loadedAt < this.refreshMs) return cached.wallet;
    this.wallets.delete(k);
    return this.wallet(mint, unit);
  }

  private async load(mint: string, unit: string): Promise<Wallet> {
    const wallet = new Wallet(mint, { unit, requireSigDleq: true, logger: undefined });
    try {
      await wallet.loadMint();
    } catch (err) {
      throw mapMintError(mint, err);
    }
    let keyset: string;
    try {
      keyset = wallet.keysetId; // cashu-ts throws here when the mint has no active keyset in this unit
    } catch {
      throw new UnsupportedUnitError(mint, unit);
    }
    this.logger.debug('mint loaded', { mint, unit, keyset });
    return wallet;
  }

  /**
   * Run one mint call with mapped errors. If the mint says our keyset is unknown or inactive,
   * reload keys and run `fn` once more with the fresh wallet (safe: the mint refused, so
   * nothing happened).
   */
  async call<T>(mintUrl: string, unit: string, fn: (wallet: Wallet) => Promise<T>): Promise<T> {
    const mint = this.assertTrusted(mintUrl);
    try {
      return await fn(await this.wallet(mint, unit));
    } catch (raw) {
      const err = mapMintError(mint, raw);
      if (err instanceof MintRejectedError && (err.mintCode === NUT_CODE.KEYSET_INACTIVE || err.mintCode === NUT_CODE.KEYSET_UNKNOWN)) {
        this.logger.info('mint keysets changed; reloading', { mint, unit });
        const fresh = await this.refresh(mint, unit, true);
        try {
          return await fn(fresh);
        } catch (again) {
          throw mapMintError(mint, again);
        }
      }
      throw err;
    }
  }

  /** Keysets of a mint (all units) with their input fees. */
  async keysets(mintUrl: string): Promise<KeysetSummary[]> {
    const wallet = await this.wallet(mintUrl);
    return wallet.keyChain.getKeysets().map((k) => ({ id: k.id, unit: k.unit, active: k.isActive, inputFeePpk: k.fee }));
  }

  /**
   * NUT-07 states of proofs, in order ('UNSPENT' | 'PENDING' | 'SPENT'), any number of them: sent in
   * batches the mint accepts (cashu-ts 4.8 splits again by 100; the cap here does not rely on that).
   */
  async checkStates(mintUrl: string, unit: string, proofs: Pick<Proof, 'secret' | 'id'>[]): Promise<('UNSPENT' | 'PENDING' | 'SPENT')[]> {
    const states: ('UNSPENT' | 'PENDING' | 'SPENT')[] = [];
    for (const batch of mintBatches(proofs)) {
      states.push(...(await this.call(mintUrl, unit, async (w) => (await w.checkProofsStates(batch)).map((s) => s.state as 'UNSPENT' | 'PENDING' | 'SPENT'))));
    }
    return states;
  }

  /** Does the mint offer NUT-09 restore (recovering signatures for outputs we persisted)? */
  async supportsRestore(mintUrl: string, unit = 'sat'): Promise<boolean> {
    const wallet = await this.wallet(mintUrl, unit);
    return wallet.getMintInfo().isSupported(9).supported;
  }

  /**
   * NUT-09: ask the mint for signatures it already made on these outputs and unblind them.
   * Returns the proofs recovered (possibly fewer than the outputs), or null if the mint has no restore.
   * Any number of outputs (every set a swap ever sent): asked in batches the mint accepts.
   */
  async restore(mintUrl: string, unit: string, outputs: OutputData[]): Promise<Proof[] | null> {
    if (!(await this.supportsRestore(mintUrl, unit))) return null;
    const proofs: Proof[] = [];
    for (const batch of mintBatches(outputs)) {
      proofs.push(...(await this.call(mintUrl, unit, async (w) => {
        const res = await w.mint.restore({ outputs: batch.map((o) => o.blindedMessage) });
        const byB = new Map(batch.map((o) => [o.blindedMessage.B_, o]));
        return res.outputs.map((bm, i) => {
          const out = byB.get(bm.B_);
          if (!out) throw new MintRejectedError('mint restored an output we did not send');
          return out.toProof(res.signatures[i], w.getKeyset(res.signatures[i].id));
        });
      })));
    }
    return proofs;
  }
}
