// What a routstr-core version changes in the X-Cashu paths, read from the tagged releases:
//   < 0.4.2  an underpaid token gets 413 (payment/helpers.py check_token_balance; 402 since)
//   < 0.4.3  /v1/balance/refund has no X-Cashu branch: it requires an Authorization header, so
//            FastAPI answers 422 (missing header) to an X-Cashu-only refund request
//   < 0.4.4  a refund asked while the request runs (no "out" row yet) answers 404, not 425, and
//            redemption errors carry the raw message ("CASHU token processing failed: ...")
//            instead of classify_redemption_error's sanitised one

/** The node behaviours that depend on its version. */
export interface VersionBehaviour {
  /** Status of check_token_balance's minimum_balance_required answer. */
  underpaidStatus: 402 | 413;
  /** POST /v1/balance/refund (and /v1/wallet/refund) looks refunds up by the X-Cashu token. */
  xcashuRefundRoute: boolean;
  /** Answer while the request runs, or when no refund was minted: 425 from v0.4.4, 404 before. */
  refundPendingStatus: 425 | 404;
  /** Redemption errors go through classify_redemption_error (v0.4.4 on). */
  classifiedRedemptionErrors: boolean;
}

/** Numeric [major, minor, patch] of a version string such as "0.4.5" or "v0.4.5-beta"; unparsable: the newest. */
export function parseVersion(version: string): [number, number, number] {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(version.trim());
  if (!m) return [Number.MAX_SAFE_INTEGER, 0, 0];
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

/** version >= at, comparing major.minor.patch. */
export function versionAtLeast(version: string, at: string): boolean {
  const a = parseVersion(version);
  const b = parseVersion(at);
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return true;
}

export function behaviourOf(version: string): VersionBehaviour {
  return {
    underpaidStatus: versionAtLeast(version, '0.4.2') ? 402 : 413,
    xcashuRefundRoute: versionAtLeast(version, '0.4.3'),
    refundPendingStatus: versionAtLeast(version, '0.4.4') ? 425 : 404,
    classifiedRedemptionErrors: versionAtLeast(version, '0.4.4'),
  };
}
