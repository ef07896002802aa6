// Protocol errors of the test mint. Codes follow cashubtc/nuts error_codes.md; they travel as
// HTTP 400 {"detail","code"}, which cashu-ts turns into MintOperationError with that code.

export const MintErrorCode = {
  /** No standard code exists (unknown quote, malformed request). */
  UNSPECIFIED: 0,
  PROOF_VERIFICATION_FAILED: 10001,
  PROOFS_ALREADY_SPENT: 11001,
  PROOFS_PENDING: 11002,
  OUTPUTS_ALREADY_SIGNED: 11003,
  TRANSACTION_NOT_BALANCED: 11005,
  AMOUNT_OUTSIDE_LIMIT: 11006,
  DUPLICATE_INPUTS: 11007,
  DUPLICATE_OUTPUTS: 11008,
  MULTIPLE_UNITS: 11009,
  UNIT_MISMATCH: 11010,
  AMOUNTLESS_INVOICE: 11011,
  UNIT_NOT_SUPPORTED: 11013,
  KEYSET_UNKNOWN: 12001,
  KEYSET_INACTIVE: 12002,
  QUOTE_NOT_PAID: 20001,
  QUOTE_ALREADY_ISSUED: 20002,
  LIGHTNING_PAYMENT_FAILED: 20004,
  QUOTE_PENDING: 20005,
  INVOICE_ALREADY_PAID: 20006,
  QUOTE_EXPIRED: 20007,
} as const;

export type MintErrorCodeValue = (typeof MintErrorCode)[keyof typeof MintErrorCode];

/** A request the mint refuses; answered as HTTP 400 with the protocol code. */
export class MintError extends Error {
  constructor(
    readonly code: MintErrorCodeValue,
    message: string,
  ) {
    super(message);
    this.name = 'MintError';
  }
}
