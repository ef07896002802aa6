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
