import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, redact } from '../../protocol/logger.ts';

test('tokens, NWC secrets and keys never reach the log', () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l), clock: () => 0 });
  log.warn('change refused', {
    token: 'cashuBo2FteCJodHRwOi8vMTI3LjAuMC4xOjQwMDAxYXVjc2F0YXSBomFpSAC0',
    nwc: 'nostr+walletconnect://abc?relay=ws://127.0.0.1:1&secret=0123456789abcdef',
    err: new Error('bad key sr_live_abcdefghijkl'),
  });
  const line = lines.join('');
  assert.doesNotMatch(line, /cashuBo2F|0123456789abcdef|abcdefghijkl/);
  assert.match(line, /cashu\[redacted\]/);
  assert.match(line, /secret=\[redacted\]/);
  assert.equal(JSON.parse(line).msg, 'change refused');
});

test('levels below the configured one are not written', () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'warn', write: (l) => lines.push(l) });
  log.info('probe ok');
  log.error('mint down');
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]).level, 'error');
  assert.equal(redact('nothing secret here'), 'nothing secret here');
});

test('journald gets one entry per log call: a multi-line message or error stays on one line, with its level', () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l), clock: () => 0, name: 'satroute' });
  const err = new Error('mint said:\n  500 internal\n  retry later');
  log.error('swap failed\nwill retry', { error: err, detail: 'a\r\nb' });
  assert.equal(lines.length, 1);
  assert.equal(lines[0].indexOf('\n'), lines[0].length - 1, 'exactly one newline, at the end');
  const entry = JSON.parse(lines[0]);
  assert.deepEqual([entry.level, entry.name, entry.msg, entry.error.message], ['error', 'satroute', 'swap failed\nwill retry', 'mint said:\n  500 internal\n  retry later']);
  assert.equal(entry.time, '1970-01-01T00:00:00.000Z');
});

test('with stderr on the journal each line carries its syslog priority, so journalctl -p filters by level', () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l), syslogPrefix: true });
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
  assert.deepEqual(lines.map((l) => l.slice(0, 3)), ['<7>', '<6>', '<4>', '<3>']);
  assert.equal(JSON.parse(lines[2].slice(3)).level, 'warn');
});

test('a logged proof secret or preimage is redacted by its field name, whatever its value looks like', () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l) });
  const secret = 'b7c5d2a1e9f04c3b8a6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b';
  log.warn('change refused', { proof: { id: '009a1f293253e41e', amount: 8, secret, C: '02abc' }, preimage: 'ff'.repeat(32), amount: 8 });
  assert.ok(!lines[0].includes(secret) && !lines[0].includes('ff'.repeat(32)));
  const entry = JSON.parse(lines[0]);
  assert.deepEqual([entry.proof.secret, entry.proof.amount, entry.preimage, entry.amount], ['[redacted]', 8, '[redacted]', 8]);
});
