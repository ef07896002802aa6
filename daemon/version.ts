// The daemon's version, in a file of its own so the CLI can show it without loading the daemon:
// the one source for `satroute --version`, `satroute status` and the metrics' satroute_build_info
// (package.json says the same; test/daemon/cli.test.ts holds them together).
export const VERSION = '0.1.0';
