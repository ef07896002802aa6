// Whose is an announced URL: the pubkey its /v1/info names (the market's use of it, against the
// world's `impersonate` knob, is in market.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { npubEncode } from 'nostr-tools/nip19';
import { infoPubkey, urlClaim } from '../../daemon/market-claims.ts';

test('a URL is confirmed by the npub its /v1/info names, refuted by another, unverified without one', () => {
  const owner = getPublicKey(generateSecretKey());
  const other = getPublicKey(generateSecretKey());
  assert.equal(infoPubkey(npubEncode(owner)), owner);
  assert.equal(infoPubkey(owner.toUpperCase()), owner, 'hex is accepted too');
  for (const bad of [undefined, '', 'npub1garbage', 'nsec1xyz', 'abc']) assert.equal(infoPubkey(bad), undefined, String(bad));
  assert.equal(urlClaim(owner, { npub: npubEncode(owner) }), 'confirmed');
  assert.equal(urlClaim(owner, { npub: npubEncode(other) }), 'refuted');
  assert.equal(urlClaim(owner, { npub: 'npub1garbage' }), 'unverified');
  assert.equal(urlClaim(owner, {}), 'unverified', 'an older node without npub');
  assert.equal(urlClaim(owner, undefined), 'unverified', '/v1/info did not answer');
  assert.equal(urlClaim(undefined, { npub: npubEncode(other) }), 'unverified', 'a static provider claims nothing');
});
