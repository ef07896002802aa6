// Types of bin/node-flags.js (plain JavaScript, beside bin/satroute.js).
/** Node flags the daemon runs with: the shebang of bin/satroute.js, the systemd unit and the ws bench. */
export declare const DAEMON_NODE_FLAGS: readonly string[];
