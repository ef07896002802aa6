// Every error a request can end with reaches the client as one clear, redacted message with
// the right status and code - never a raw ZodError, a path from ENOENT, or a stack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { APIError } from 'openai';
import Database from 'better-sqlite3';
import {
  API_ERROR_CODES, BadRequestError, BudgetExceededError, CanceledError, ForbiddenError, NoProviderError, PaymentFailedError,
  PayloadTooLargeError, ProviderFailedError, UnauthorizedError, errorHeaders, openAiErrorBody, toApiError, wsErrorMessage,
} from '../../../daemon/api/errors.ts';
import { InsufficientFundsError, MintUnavailableError, WalletLockedError } from '../../../wallet/errors.ts';
import { PaymentStateError } from '../../../wallet/errors.ts';

test('each daemon error keeps its status, code and retryability', () => {
  const cases: [Error, number, string, boolean][] = [
    [new UnauthorizedError(), 401, 'unauthorized', false],
    [new ForbiddenError('no admin scope'), 403, 'unauthorized', false],
    [new BadRequestError('bad body'), 400, 'bad_request', false],
    [new PayloadTooLargeError(1024), 413, 'bad_request', false],
    [new BudgetExceededError('daily', 5000, 1200), 402, 'budget_exceeded', false],
    [new NoProviderError('nobody serves model x'), 404, 'no_provider', false],
    [new NoProviderError('all breakers open', { retryable: true }), 503, 'no_provider', true],
    [new ProviderFailedError('3 providers failed', 2), 502, 'provider_failed', true],
    [new PaymentFailedError('mint down', { retryable: true }), 503, 'payment_failed', true],
    [new CanceledError(), 499, 'canceled', false],
  ];
  for (const [err, status, code, retryable] of cases) {
    const e = toApiError(err);
    assert.deepEqual([e.status, e.code, e.retryable], [status, code, retryable], err.name);
    assert.ok((API_ERROR_CODES as readonly string[]).includes(e.code));
    assert.equal(e.message, err.message);
  }
  assert.equal(toApiError(new ProviderFailedError('x', 2)).retryAfterS, 2);
});

test('the budget error says how much the request needed and how much is left, in sats', () => {
  const e = toApiError(new BudgetExceededError('daily', 12_500, 1_000));
  assert.match(e.message, /12\.500 sat/);
  assert.match(e.message, /only 1 sat of the key's daily budget is left/);
  assert.match(toApiError(new BudgetExceededError('per_request', 30_000, 20_000)).message, /above the key's cap of 20 sat per request/);
});

test('a zod failure becomes a 400 naming the fields, not the raw issue dump', () => {
  const Body = z.object({ model: z.string(), messages: z.array(z.object({ role: z.string() })).min(1) });
  const r = Body.safeParse({ model: 3, messages: [{}] });
  assert.equal(r.success, false);
  const e = toApiError(r.error);
  assert.equal(e.status, 400);
  assert.equal(e.code, 'bad_request');
  assert.match(e.message, /^invalid request: /);
  assert.match(e.message, /model: /);
  assert.match(e.message, /messages\.0\.role: /);
  assert.doesNotMatch(e.message, /ZodError|"code"|\[\s*\{/);
});

test('a missing file becomes an internal error that does not reveal the path', () => {
  let err: unknown;
  try {
    fs.readFileSync(path.join(os.tmpdir(), 'satroute-secret-dir', 'nope.json'));
  } catch (e) {
    err = e;
  }
  const e = toApiError(err);
  assert.equal(e.status, 500);
  assert.equal(e.code, 'internal');
  assert.match(e.message, /ENOENT/);
  assert.doesNotMatch(e.message, /satroute-secret-dir|nope\.json/);
});

test('a busy database is a retryable internal error', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-errors-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'db.sqlite');
  const a = new Database(file);
  const b = new Database(file, { timeout: 0 });
  t.after(() => (a.close(), b.close()));
  a.exec('CREATE TABLE t (x)');
  a.exec('BEGIN IMMEDIATE');
  let err: unknown;
  try {
    b.exec('INSERT INTO t VALUES (1)');
  } catch (e) {
    err = e;
  }
  a.exec('ROLLBACK');
  const e = toApiError(err);
  assert.equal(e.code, 'internal');
  assert.equal(e.retryable, true);
  assert.match(e.message, /database is busy/);
});

test("wallet errors are payment failures the caller cannot fix, retryable only when the mint may come back", () => {
  const funds = toApiError(new InsufficientFundsError(100, 20, 'sat', 'http://mint'));
  assert.deepEqual([funds.status, funds.code, funds.retryable], [503, 'payment_failed', false]);
  assert.doesNotMatch(funds.message, /http:\/\/mint/);
  assert.equal(toApiError(new MintUnavailableError('http://mint')).retryable, true);
  assert.equal(toApiError(new PaymentStateError('try again shortly')).retryable, true);
  assert.equal(toApiError(new WalletLockedError(42, '/x/wallet.lock')).code, 'payment_failed');
});

test('an unknown error is a 500 that does not leak its message', () => {
  const e = toApiError(new TypeError("Cannot read properties of undefined (reading 'proofs')"));
  assert.deepEqual([e.status, e.code], [500, 'internal']);
  assert.doesNotMatch(e.message, /proofs/);
  assert.equal(toApiError('a string').code, 'internal');
});

test('an aborted request is canceled', () => {
  const ac = new AbortController();
  ac.abort();
  assert.equal(toApiError(ac.signal.reason).code, 'canceled');
});

test('secrets in a message are redacted before they reach the client', () => {
  const e = toApiError(new BadRequestError('bad key sr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA and token cashuBo2FteCJodHRwOi8vbG9jYWxob3N0'));
  assert.doesNotMatch(e.message, /sr_AAAA|cashuBo2F/);
});

test("the body follows OpenAI's error shape and the official client raises the matching class", () => {
  const cases: [Error, string][] = [
    [new UnauthorizedError(), 'AuthenticationError'],
    [new BadRequestError('x'), 'BadRequestError'],
    [new ForbiddenError('x'), 'PermissionDeniedError'],
    [new NoProviderError('x'), 'NotFoundError'],
    [new BudgetExceededError('daily', 1, 0), 'APIError'],
    [new ProviderFailedError('x'), 'InternalServerError'],
  ];
  for (const [err, cls] of cases) {
    const e = toApiError(err);
    const body = openAiErrorBody(e);
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
    const clientErr = APIError.generate(e.status, body, undefined, new Headers(errorHeaders(e)));
    assert.equal(clientErr.constructor.name, cls);
    assert.equal(clientErr.code, e.code);
    assert.equal(clientErr.type, e.type);
  }
  // 5xx the client cannot fix: the official client's automatic retry is told not to.
  assert.equal(errorHeaders(toApiError(new InsufficientFundsError(1, 0, 'sat')))['x-should-retry'], 'false');
  assert.equal(errorHeaders(toApiError(new ProviderFailedError('x', 3)))['retry-after'], '3');
});

test('the WebSocket error message carries the request id and the code', () => {
  assert.deepEqual(wsErrorMessage('r1', toApiError(new UnauthorizedError('no key'))), { type: 'error', id: 'r1', code: 'unauthorized', message: 'no key', retryable: false });
});
