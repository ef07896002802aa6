// The wallet's methods on the daemon's control socket (daemon/control/server.ts). The CLI calls
// the same handlers in-process when no daemon runs, so both paths answer with the same JSON.
import { z } from 'zod';
import type { CashuWallet, FundingQuote, WithdrawResult } from '../../wallet/index.ts';
import { LEDGER_KINDS } from '../../wallet/ledger.ts';
import { unitToSatFloor as toSat } from '../../protocol/units.ts';

type Handlers = Record<string, (params: unknown) => Promise<unknown>>;

export function quoteJson(q: FundingQuote) {
  return { quote_id: q.quoteId, mint: q.mint, unit: q.unit, amount_sat: toSat(q.amount, q.unit), bolt11: q.bolt11, expiry: q.expiry, state: q.state, error: q.error };
}

export function withdrawJson(r: WithdrawResult) {
  return {
    quote_id: r.quoteId, mint: r.mint, unit: r.unit, state: r.state, amount_sat: toSat(r.amount, r.unit),
    fee_reserve_sat: toSat(r.feeReserve, r.unit), lightning_fee_sat: toSat(r.lightningFee, r.unit), input_fee_sat: toSat(r.inputFee, r.unit),
    change_sat: toSat(r.change, r.unit), preimage: r.preimage,
  };
}

const QuoteId = z.object({ quote_id: z.string().min(1) });
const History = z.object({ limit: z.number().int().positive().optional(), since: z.number().int().optional(), kind: z.enum(LEDGER_KINDS).optional(), mint: z.string().optional() });

/** Handlers for startControlServer / in-process use: 'wallet.balance', 'wallet.fund.create', ... */
export function walletControlHandlers(wallet: CashuWallet): Handlers {
  return {
    'wallet.balance': async () => {
      const b = wallet.balance();
      return {
        total_sat: b.totalSat, pending_sat: b.pendingSat, mints: b.mints, nwc: wallet.nwcConfigured(),
        held_sat: b.heldSat, sessions: b.sessions.map((e) => ({ provider_url: e.providerUrl, mint: e.mint, unit: e.unit, held_sat: e.heldSat, sessions: e.sessions })),
      };
    },
    'wallet.history': async (p) => {
      const q = History.parse(p ?? {});
      return {
        entries: wallet.history(q).map((r) => ({ id: r.id, time: new Date(r.time).toISOString(), kind: r.kind, mint: r.mint, unit: r.unit, amount: r.amount, ref: r.ref, evidence: r.evidence })),
      };
    },
    'wallet.receive': async (p) => {
      const { token } = z.object({ token: z.string().min(1) }).parse(p);
      const r = await wallet.receive(token);
      return { amount_sat: toSat(r.received, r.unit), fee_sat: toSat(r.fee, r.unit), token_amount_sat: toSat(r.amount, r.unit), unit: r.unit, amount: r.received, mint: r.mint, swap_id: r.swapId };
    },
    'wallet.fund.create': async (p) => {
      const a = z.object({ amount_sat: z.number().int().positive(), mint: z.string().optional() }).parse(p);
      return { ...quoteJson(await wallet.createFundingQuote(a.amount_sat, { mint: a.mint })), nwc: wallet.nwcConfigured() };
    },
    'wallet.fund.pay_nwc': async (p) => {
      await wallet.payWithNwc(QuoteId.parse(p).quote_id);
      return { paid: true };
    },
    'wallet.fund.status': async (p) => quoteJson(await wallet.fundingStatus(QuoteId.parse(p).quote_id)),
    'wallet.withdraw': async (p) => {
      const a = z.object({ bolt11: z.string().min(1), mint: z.string().optional() }).parse(p);
      return withdrawJson(await wallet.withdraw(a.bolt11, { mint: a.mint }));
    },
    'wallet.nwc': async (p) => {
      const i = await wallet.connectNwc(z.object({ uri: z.string().min(1) }).parse(p).uri);
      return { connected: true, alias: i.alias, network: i.network, balance_msat: i.balanceMsat, methods: i.methods, relays: i.relays };
    },
    'wallet.verify': async (p) => {
      const a = z.object({ check_mints: z.boolean().optional() }).parse(p ?? {});
      return wallet.verify({ checkMints: a.check_mints ?? true });
    },
    'wallet.trust': async (p) => ({ mint: wallet.trustMint(z.object({ mint: z.string().url() }).parse(p).mint) }),
  };
}
