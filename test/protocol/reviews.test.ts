import { test } from 'node:test';
import assert from 'node:assert/strict';
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { readReview, ReviewBook, verdictOf } from '../../protocol/reviews.ts';

const NOW = 1_800_000_000_000;
const sec = Math.floor(NOW / 1000);

function review(sk: Uint8Array, node: string, label: string, createdAt = sec - 60, d = node.slice(0, 12)): Event {
  return finalizeEvent({ kind: 38425, created_at: createdAt, tags: [['d', d], ['node', node], ['t', label]], content: '' }, sk);
}

test('labels map to verdicts: lgtm/trusted/verified good, avoid/suspicious/blacklisted/removed bad', () => {
  for (const l of ['lgtm', 'Trusted', 'verified']) assert.equal(verdictOf([l]), 'good');
  for (const l of ['avoid', 'suspicious', 'BLACKLISTED', 'removed']) assert.equal(verdictOf([l]), 'bad');
  assert.equal(verdictOf(['meh']), undefined);
  assert.equal(verdictOf(['lgtm', 'avoid']), 'bad');
});

test('only the configured curator is listened to', () => {
  const curator = generateSecretKey();
  const stranger = generateSecretKey();
  const node = getPublicKey(generateSecretKey());
  const book = new ReviewBook([getPublicKey(curator)]);
  assert.equal(book.ingest(review(stranger, node, 'avoid'), NOW).outcome, 'ignored');
  assert.equal(book.verdict(node), undefined);
  assert.equal(book.ingest(review(curator, node, 'lgtm'), NOW).outcome, 'added');
  assert.deepEqual(book.verdict(node), { verdict: 'good', label: 'lgtm' });
});

test("the curator's newest review of a node decides, and a forged one does not count", () => {
  const curator = generateSecretKey();
  const node = getPublicKey(generateSecretKey());
  const book = new ReviewBook([getPublicKey(curator)]);
  book.ingest(review(curator, node, 'lgtm', sec - 100), NOW);
  assert.equal(book.ingest(review(curator, node, 'avoid', sec - 200), NOW).outcome, 'stale');
  assert.equal(book.verdict(node)?.verdict, 'good');
  // a separate (differently addressed) review that is newer wins
  book.ingest(review(curator, node, 'avoid', sec - 50, 'second'), NOW);
  assert.equal(book.verdict(node)?.verdict, 'bad');
  const forged = { ...(JSON.parse(JSON.stringify(review(curator, node, 'avoid', sec - 10))) as Event), tags: [['d', 'second'], ['node', node], ['t', 'lgtm']] };
  assert.equal(book.ingest(forged, NOW).outcome, 'bad_signature');
  assert.equal(book.verdict(node)?.verdict, 'bad');
});

test('reviews without a node or a label, or dated far ahead, are not reviews', () => {
  const sk = generateSecretKey();
  const node = getPublicKey(generateSecretKey());
  assert.equal(readReview(finalizeEvent({ kind: 38425, created_at: sec, tags: [['t', 'lgtm']], content: '' }, sk), NOW), undefined);
  assert.equal(readReview(finalizeEvent({ kind: 38425, created_at: sec, tags: [['node', node]], content: '' }, sk), NOW), undefined);
  assert.equal(readReview(review(sk, node, 'lgtm', sec + 3600), NOW), undefined);
  assert.equal(readReview(review(sk, node, 'lgtm'), NOW)?.verdict, 'good');
});
