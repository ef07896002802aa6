// The request path's own errors, in the daemon's tree (api/errors.ts maps every DaemonError to
// what a client sees, in one place).
import { BadRequestError, DaemonError } from '../api/errors.ts';

/** The provider refused the caller's request itself (its 400/404/422): no failover, no breaker failure. */
export class UpstreamRequestError extends BadRequestError {
  override name = 'UpstreamRequestError';
  override readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status >= 400 && status < 500 ? status : 400;
  }
}

/** The daemon is stopping and takes no new requests. */
export class ShuttingDownError extends DaemonError {
  override name = 'ShuttingDownError';
  override readonly status = 503;
  override readonly type = 'server_error';
  override readonly retryable = true;
  constructor() {
    super('satroute is shutting down; try again when it is back');
  }
}
