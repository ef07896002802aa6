// A real NIP-47 wallet service (@getalby/sdk's NWCWalletService) on the local relay. It holds
// its own balance and pays on the simulated Lightning network; invoices it makes are paid to
// its own Lightning node and credited when settled.
import './ws-global.ts';
import {
  NWCWalletService,
  NWCWalletServiceKeyPair,
  type NWCWalletServiceRequestHandler,
  type Nip47GetInfoResponse,
  type Nip47SingleMethod,
  type Nip47Transaction,
} from '@getalby/sdk';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { decodeInvoice, LightningError, type Clock, type Invoice, type LightningNetwork, type LightningNode } from './lightning.ts';

export interface NwcPayment {
  bolt11: string;
  paymentHash: string;
  amountMsat: number;
  feeMsat: number;
  atMs: number;
}

export interface NwcKnobs {
  /** Answer the next N pay_invoice requests with INTERNAL without paying. */
  failNextPayments: number;
}

export interface TestNwcService {
  /** nostr+walletconnect://<service pubkey>?relay=...&secret=<client secret> */
  readonly uri: string;
  readonly walletPubkey: string;
  /** The service's spendable balance; tests may set it. */
  balanceMsat: number;
  /** The Lightning node that receives make_invoice payments. */
  readonly node: LightningNode;
  /** Outgoing payments made through pay_invoice, oldest first. */
  readonly payments: readonly NwcPayment[];
  /** Incoming payments credited to the balance, oldest first. */
  readonly received: readonly Invoice[];
  readonly knobs: NwcKnobs;
  stop(): Promise<void>;
}

export interface NwcServiceOptions {
  relayUrl: string;
  lightning: LightningNetwork;
  balanceSat?: number;
  name?: string;
  clock?: Clock;
}

const METHODS: Nip47SingleMethod[] = ['get_info', 'get_balance', 'pay_invoice', 'make_invoice', 'lookup_invoice', 'list_transactions'];

type Handled<T> = Promise<{ result: T | undefined; error: { code: string; message: string } | undefined }>;
const ok = <T>(result: T) => Promise.resolve({ result, error: undefined });
const fail = (code: string, message: string) => Promise.resolve({ result: undefined, error: { code, message } });

interface Tracked {
  type: 'incoming' | 'outgoing';
  invoice: Invoice;
  feeMsat: number;
}

/** Start a wallet service connected to the relay; resolves once it listens for requests. */
export async function startNwcService(opts: NwcServiceOptions): Promise<TestNwcService> {
  const clock = opts.clock ?? Date.now;
  const ln = opts.lightning;
  const name = opts.name ?? 'test-nwc';
  const node = ln.node(name);
  const walletSecret = bytesToHex(generateSecretKey());
  const clientKey = generateSecretKey();
  const clientSecret = bytesToHex(clientKey);
  const clientPubkey = getPublicKey(clientKey);
  const keypair = new NWCWalletServiceKeyPair(walletSecret, clientPubkey);
  const payments: NwcPayment[] = [];
  const received: Invoice[] = [];
  const tracked = new Map<string, Tracked>(); // by payment hash
  const knobs: NwcKnobs = { failNextPayments: 0 };

  const state = {
    uri: `nostr+walletconnect://${keypair.walletPubkey}?relay=${encodeURIComponent(opts.relayUrl)}&secret=${clientSecret}`,
    walletPubkey: keypair.walletPubkey,
    balanceMsat: (opts.balanceSat ?? 0) * 1000,
    node,
    payments,
    received,
    knobs,
  };

  const stopListening = ln.onPaid((invoice) => {
    if (invoice.payee !== node.id) return;
    state.balanceMsat += invoice.amountMsat;
    received.push(invoice);
  });

  const toTransaction = (t: Tracked): Nip47Transaction => {
    const inv = ln.lookup(t.invoice.paymentHash) ?? t.invoice;
    const settled = inv.paidAtMs !== undefined;
    const expired = !settled && clock() > inv.expiresAtMs;
    return {
      type: t.type,
      state: settled ? 'settled' : expired ? 'failed' : 'pending',
      invoice: inv.bolt11,
      description: inv.description,
      description_hash: '',
      preimage: settled || t.type === 'incoming' ? inv.preimage : '',
      payment_hash: inv.paymentHash,
      amount: inv.amountMsat,
      fees_paid: t.feeMsat,
      settled_at: settled ? Math.floor(inv.paidAtMs! / 1000) : 0,
      created_at: Math.floor(inv.createdAtMs / 1000),
      expires_at: Math.floor(inv.expiresAtMs / 1000),
    };
  };

  const handler: NWCWalletServiceRequestHandler = {
    getInfo: (): Handled<Nip47GetInfoResponse> =>
      ok({ alias: name, color: '#f7931a', pubkey: node.id, network: 'regtest', block_height: 1, block_hash: '00'.repeat(32), methods: METHODS }),

    getBalance: () => ok({ balance: state.balanceMsat }),

    payInvoice: (request) => {
      let amountMsat: number;
      let paymentHash: string;
      try {
        const decoded = decodeInvoice(request.invoice);
        paymentHash = decoded.paymentHash;
        amountMsat = decoded.amountMsat ?? request.amount ?? 0;
      } catch (err) {
        return fail('OTHER', (err as Error).message);
      }
      if (amountMsat <= 0) return fail('OTHER', 'invoice has no amount');
      const feeMsat = ln.feeFor(amountMsat);
      if (state.balanceMsat < amountMsat + feeMsat) {
        return fail('INSUFFICIENT_BALANCE', `balance ${state.balanceMsat} msat is less than ${amountMsat + feeMsat} msat (amount + fee)`);
      }
      if (knobs.failNextPayments > 0) {
        knobs.failNextPayments--;
        return fail('INTERNAL', 'payment failed (knob)');
      }
      // Debit before paying: paying our own invoice credits us through onPaid synchronously.
      state.balanceMsat -= amountMsat + feeMsat;
      try {
        const paid = ln.pay(request.invoice);
        state.balanceMsat += feeMsat - paid.feeMsat;
        payments.push({ bolt11: request.invoice, paymentHash, amountMsat, feeMsat: paid.feeMsat, atMs: clock() });
        tracked.set(paymentHash, { type: 'outgoing', invoice: ln.lookup(paymentHash)!, feeMsat: paid.feeMsat });
        return ok({ preimage: paid.preimage, fees_paid: paid.feeMsat });
      } catch (err) {
        state.balanceMsat += amountMsat + feeMsat;
        if (err instanceof LightningError) {
          if (err.code === 'INVOICE_NOT_FOUND') return fail('NOT_FOUND', err.message);
          return fail('PAYMENT_FAILED', `${err.code}: ${err.message}`);
        }
        return fail('INTERNAL', (err as Error).message);
      }
    },

    makeInvoice: (request) => {
      if (!Number.isSafeInteger(request.amount) || request.amount <= 0) return fail('OTHER', 'amount must be a positive msat integer');
      const invoice = node.createInvoice(request.amount, request.description ?? '', request.expiry ?? 3600);
      const t: Tracked = { type: 'incoming', invoice, feeMsat: 0 };
      tracked.set(invoice.paymentHash, t);
      return ok(toTransaction(t));
    },

    lookupInvoice: (request) => {
      let hash = request.payment_hash;
      if (!hash && request.invoice) {
        try {
          hash = decodeInvoice(request.invoice).paymentHash;
        } catch (err) {
          return fail('OTHER', (err as Error).message);
        }
      }
      const t = hash ? tracked.get(hash) : undefined;
      if (!t) return fail('NOT_FOUND', 'invoice not found');
      return ok(toTransaction(t));
    },

    listTransactions: (request) => {
      let list = [...tracked.values()].map(toTransaction);
      if (request.type) list = list.filter((t) => t.type === request.type);
      if (!request.unpaid) list = list.filter((t) => t.state === 'settled');
      if (request.from !== undefined) list = list.filter((t) => t.created_at >= request.from!);
      if (request.until !== undefined) list = list.filter((t) => t.created_at <= request.until!);
      list.sort((a, b) => b.created_at - a.created_at);
      const total = list.length;
      const offset = request.offset ?? 0;
      list = list.slice(offset, request.limit === undefined ? undefined : offset + request.limit);
      return ok({ transactions: list, total_count: total });
    },
  };

  const service = new NWCWalletService({ relayUrls: [opts.relayUrl] });
  let unsubscribe: (() => void) | undefined;
  try {
    await service.publishWalletServiceInfoEvent(walletSecret, METHODS, []);
    unsubscribe = await service.subscribe(keypair, handler);
    // Requests are ephemeral events: one sent before our REQ is live would be lost. The relay
    // handles a connection's messages in order, so once a later EVENT is acknowledged the
    // subscription is live.
    await service.publishWalletServiceInfoEvent(walletSecret, METHODS, []);
  } catch (err) {
    stopListening();
    service.close();
    throw err;
  }

  let stopped = false;
  return Object.assign(state, {
    stop: async () => {
      if (stopped) return;
      stopped = true;
      stopListening();
      unsubscribe?.();
      // Let in-flight response publishes settle; closing under them rejects unhandled.
      await new Promise((r) => setTimeout(r, 200));
      service.close();
    },
  });
}
