// Request and session ids from the pooled random bytes: the shape the audit shows, never repeated,
// and no two ids sharing bytes across a refill of the pool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pooledRandomBytes, randomId } from '../../protocol/ids.ts';
import { newRequestId } from '../../daemon/requests/lifecycle.ts';

test('request ids keep their shape and never repeat across many refills of the pool', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const id = newRequestId();
    assert.match(id, /^req_[A-Za-z0-9]{17}$/);
    assert.ok(!seen.has(id), `repeated ${id}`);
    seen.add(id);
  }
  assert.match(randomId('ses_', 12), /^ses_[A-Za-z0-9]{16}$/);
});

test('pooled bytes are copies: an id kept is not changed by the refills after it', () => {
  const first = pooledRandomBytes(13);
  const copy = Buffer.from(first);
  for (let i = 0; i < 1000; i++) pooledRandomBytes(13);
  assert.deepEqual(first, copy);
  assert.equal(pooledRandomBytes(10_000).length, 10_000, 'more than the pool holds comes straight from the source');
  // Not constant: 1,000 draws of 13 bytes cover most byte values.
  const values = new Set<number>();
  for (let i = 0; i < 1000; i++) for (const b of pooledRandomBytes(13)) values.add(b);
  assert.ok(values.size > 250);
});
