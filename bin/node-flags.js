// Node flags the daemon runs with, wherever it starts: bin/satroute.js's shebang, the systemd
// unit's ExecStart and the WebSocket bench's daemon carry exactly these (test/systemd/unit.test.ts
// checks all three).
//
// --max-semi-space-size=4 (MB; V8's default grows to 16 on 64-bit): a smaller young generation.
// With a thousand streams live, each scavenge copies what survives of them, and the default's
// scavenges held the event loop 15-41 ms. Capped at 4 MB they stay short (more frequent, more
// promoted to the old generation, whose marking is incremental): `npm run bench -- --only ws`
// max loop delay 31.7-48.7 ms in 9 of 9 runs, against 29-79 ms (3 of 7 over the 50 ms target) without.
export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=4'];
