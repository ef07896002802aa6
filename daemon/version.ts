// The daemon's version, in a file of its own so the CLI can show it without loading the daemon.
export const VERSION = '0.1.0';
