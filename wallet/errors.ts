// The wallet's error tree: callers branch on the class (or its stable `code`), never on the message text.

export class WalletError extends Error {
  override name = 'WalletError';
  /** A stable code for APIs and the control socket. */
  readonly code: string = 'wallet_error';
}

/** A proof moved from a state it is not in (e.g. two takers racing for the same proof). */
export class ProofStateError extends WalletError {
  override name = 'ProofStateError';
  override readonly code = 'proof_state';
}

/** A token or operation for a mint that is not in the trusted list. */
export class UntrustedMintError extends WalletError {
  override name = 'UntrustedMintError';
  override readonly code = 'untrusted_mint';
  constructor(readonly mintUrl: string) {
    super(`mint ${mintUrl} is not trusted; add it to "mints" in satroute.json (or SATROUTE_MINTS) to accept its tokens`);
  }
}

export class InsufficientFundsError extends WalletError {
  override name = 'InsufficientFundsError';
  override readonly code = 'insufficient_funds';
  constructor(readonly neededAmount: number, readonly availableAmount: number, readonly unit: string, mintUrl?: string) {
    super(`insufficient funds: need ${neededAmount} ${unit}, have ${availableAmount} ${unit}${mintUrl ? ` at ${mintUrl}` : ''}`);
  }
}

/** The mint did not answer (down, timeout, connection refused). Retry later. */
export class MintUnavailableError extends WalletError {
  override name = 'MintUnavailableError';
  override readonly code = 'mint_unavailable';
  constructor(readonly mintUrl: string, cause?: unknown) {
    super(`mint ${mintUrl} is unavailable${cause instanceof Error ? `: ${cause.message}` : ''}`, { cause });
  }
}

/** The mint answered and refused (bad token, already spent, quote not paid, ...). */
export class MintRejectedError extends WalletError {
  override name = 'MintRejectedError';
  override readonly code = 'mint_rejected';
  constructor(message: string, readonly mintCode?: number) {
    super(message);
  }
}

/** The token could not be parsed, or is in a unit/keyset we cannot use. */
export class InvalidTokenError extends WalletError {
  override name = 'InvalidTokenError';
  override readonly code = 'invalid_token';
}

/** Funding failed: quote expired, NWC refused to pay, timed out waiting for payment. */
export class FundingError extends WalletError {
  override name = 'FundingError';
  override readonly code = 'funding_failed';
}

/** Nostr Wallet Connect is not configured, unreachable, or refused. */
export class NwcError extends WalletError {
  override name = 'NwcError';
  override readonly code = 'nwc_failed';
}

/** The mint signs in no keyset of this unit (a token or a quote in a unit it does not keep). */
export class UnsupportedUnitError extends WalletError {
  override name = 'UnsupportedUnitError';
  override readonly code = 'unsupported_unit';
  constructor(readonly mintUrl: string, readonly unit: string) {
    super(`mint ${mintUrl} has no active keyset for unit ${JSON.stringify(String(unit).slice(0, 40))}`);
  }
}

/** A Lightning invoice that is not one, or that does not match its quote: nothing was paid. */
export class InvoiceError extends WalletError {
  override name = 'InvoiceError';
  override readonly code = 'invalid_invoice';
}

export class WithdrawError extends WalletError {
  override name = 'WithdrawError';
  override readonly code = 'withdraw_failed';
}

/** Another process holds the wallet lock. */
export class WalletLockedError extends WalletError {
  override name = 'WalletLockedError';
  override readonly code = 'wallet_locked';
  constructor(readonly pid: number, lockFile: string) {
    super(`the wallet is in use by process ${pid} (${lockFile}); stop it or use the running daemon`);
  }
}

/** A payment of the router's path failed (no token could be made, or the payment is unknown). */
export class PaymentError extends WalletError {
  override name = 'PaymentError';
  override readonly code: string = 'payment_failed';
}

/** The payment is not in a state that allows this (e.g. settling a payment twice, a second token for one payment id). */
export class PaymentStateError extends PaymentError {
  override name = 'PaymentStateError';
  override readonly code = 'payment_state';
}

/** How a swap step failed, in a form that survives postMessage to and from the swap worker. */
export type SwapFailure =
  /** The mint refused: nothing happened (e.g. 11001 already spent). */
  | { kind: 'rejected'; message: string; mintCode?: number }
  /** No answer, or an answer we cannot use: the mint may or may not have done it. `refused`: the connection was refused, so it certainly did not. */
  | { kind: 'unavailable'; message: string; refused: boolean }
  /**
   * Failed on our side before any mint call, so the mint never saw the proofs: a DLEQ proof we
   * required missing or bad, cashu-ts refusing to build the outputs, a bug. (A keyset the mint does
   * not list is the mint's refusal: 'rejected' with 12001.)
   */
  | { kind: 'invalid'; message: string };

/** A swap step (blinding, the mint call, unblinding) failed; `failure` says how. */
export class SwapStepError extends WalletError {
  override name = 'SwapStepError';
  override readonly code = 'swap_failed';
  constructor(readonly failure: SwapFailure) {
    super(failure.message);
  }
}
