// Hostile NWC (NIP-47) answers: a wallet service on the relay that answers get_info,
// get_balance and pay_invoice with junk - content that does not decrypt, JSON of any shape,
// results with wrong types, errors of any shape. Each call ends with typed values or an
// NwcError, never an unhandled rejection (fatal to the daemon) and never a wait without end.
import '../world/ws-global.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { Relay } from 'nostr-tools/relay';
import { finalizeEvent, getPublicKey } from 'nostr-tools/pure';
import * as nip44 from 'nostr-tools/nip44';
import { startRelay } from '../world/relay.ts';
import { NwcError } from '../../wallet/errors.ts';
import { NwcWallet } from '../../wallet/nwc.ts';
import { assertAsyncProperty } from '../property.ts';
import { numberish } from '../protocol/arbitraries.ts';

type Answer = { kind: 'undecryptable'; content: string } | { kind: 'text'; text: string } | { kind: 'result'; value: unknown } | { kind: 'error'; value: unknown };

const WALLET_KEY = sha256(new TextEncoder().encode('hostile nwc wallet'));
const CLIENT_KEY = sha256(new TextEncoder().encode('satroute nwc client'));
const WALLET_PUBKEY = getPublicKey(WALLET_KEY);

/** A NIP-47 service that answers every request with whatever `next` holds. */
async function hostileService(relayUrl: string) {
  const relay = await Relay.connect(relayUrl);
  const key = nip44.getConversationKey(WALLET_KEY, getPublicKey(CLIENT_KEY));
  const now = () => Math.floor(Date.now() / 1000);
  await relay.publish(finalizeEvent({ kind: 13194, created_at: now(), tags: [['encryption', 'nip44_v2']], content: 'get_info get_balance pay_invoice' }, WALLET_KEY));
  const state: { next: Answer; answered: number; published: Promise<unknown> } = { next: { kind: 'text', text: '{}' }, answered: 0, published: Promise.resolve() };
  relay.subscribe([{ kinds: [23194], '#p': [WALLET_PUBKEY] }], {
    onevent: (req) => {
      const method = (JSON.parse(nip44.decrypt(req.content, key)) as { method: string }).method;
      const a = state.next;
      const content =
        a.kind === 'undecryptable' ? a.content
        : a.kind === 'text' ? nip44.encrypt(a.text, key)
        : nip44.encrypt(JSON.stringify(a.kind === 'result' ? { result_type: method, result: a.value } : { result_type: method, error: a.value }) ?? 'null', key);
      state.answered++;
      state.published = relay.publish(finalizeEvent({ kind: 23195, created_at: now(), tags: [['e', req.id], ['p', getPublicKey(CLIENT_KEY)]], content }, WALLET_KEY)).catch(() => {});
    },
  });
  return { state, close: async () => { await state.published; relay.close(); }, uri: `nostr+walletconnect://${WALLET_PUBKEY}?relay=${encodeURIComponent(relayUrl)}&secret=${bytesToHex(CLIENT_KEY)}` };
}

const any = fc.oneof({ weight: 2, arbitrary: numberish }, { weight: 1, arbitrary: fc.string({ maxLength: 20 }) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });
const answerArb: fc.Arbitrary<Answer> = fc.oneof(
  fc.oneof(fc.string({ maxLength: 40 }), fc.base64String({ minLength: 4, maxLength: 200 }), fc.constant('')).map((content) => ({ kind: 'undecryptable' as const, content })),
  fc.oneof(fc.constantFrom('null', '[]', '5', '"x"', 'true', '{', '{"result":null}', '{"error":null}'), fc.jsonValue().map((v) => JSON.stringify(v)), fc.string({ maxLength: 30 })).map((text) => ({ kind: 'text' as const, text })),
  fc.oneof(
    fc.record({ alias: any, network: any, methods: fc.oneof(fc.constant(['get_info', 'get_balance', 'pay_invoice']), fc.array(any, { maxLength: 3 }), any), balance: any, preimage: fc.oneof(fc.constant('ab'.repeat(32)), any), fees_paid: any }, { requiredKeys: [] }),
    any,
  ).map((value) => ({ kind: 'result' as const, value })),
  fc.oneof(fc.record({ code: fc.oneof(fc.constantFrom('INSUFFICIENT_BALANCE', 'INTERNAL', 'OTHER'), any), message: fc.oneof(fc.string({ maxLength: 20 }), fc.string({ minLength: 5000, maxLength: 5001 }), any) }, { requiredKeys: [] }), any).map((value) => ({ kind: 'error' as const, value })),
);

const isSafeMsat = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

test('any NWC answer to get_info, get_balance or pay_invoice gives typed values or an NwcError, and the call always ends', { timeout: 60_000 }, async (t) => {
  const relay = await startRelay();
  const service = await hostileService(relay.url);
  const wallet = await NwcWallet.connect(service.uri, { queryMs: 8_000, payMs: 8_000 });
  t.after(async () => {
    wallet.close();
    await service.close();
    await relay.stop();
  });
  await assertAsyncProperty(
    fc.asyncProperty(fc.constantFrom('info', 'balance', 'pay'), answerArb, async (call, answer) => {
      service.state.next = answer;
      try {
        if (call === 'info') {
          const info = await wallet.info();
          assert.ok(Array.isArray(info.methods) && info.methods.every((m) => typeof m === 'string'));
          assert.ok(typeof info.alias === 'string' && typeof info.network === 'string');
          assert.ok(info.balanceMsat === null || isSafeMsat(info.balanceMsat));
        } else if (call === 'balance') {
          assert.ok(isSafeMsat(await wallet.balanceMsat()));
        } else {
          const paid = await wallet.payInvoice('lnbcrt10n1junk');
          assert.match(paid.preimage, /^[0-9a-fA-F]{64}$/);
          assert.ok(paid.feesPaidMsat === null || isSafeMsat(paid.feesPaidMsat));
        }
      } catch (err) {
        assert.ok(err instanceof NwcError, `not an NwcError: ${(err as Error)?.stack ?? String(err)}`);
        assert.ok(err.message.length < 800, 'a wallet\'s long message is clipped');
        assert.ok(!err.message.includes(bytesToHex(CLIENT_KEY)), 'the connection secret is never in an error');
      }
    }),
    { seed: 1391, numRuns: 30 },
  );
  assert.ok(service.state.answered >= 30);
});
