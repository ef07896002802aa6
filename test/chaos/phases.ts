// Where a SIGKILL lands, on purpose. Each phase slows the world where that phase waits (a real
// mint or node can be this slow: a mint answering in 400 ms, a node thinking for half a second),
// starts the work, and resolves at a seeded moment inside the phase; the suite then kills the
// daemon. Nothing in the daemon knows it is being tested: the phases watch the world and read the
// daemon's database (read-only) to know where it is. Adding a phase is one entry in PHASES.
import type { World } from '../world/index.ts';
import { control, until, type DaemonProcess } from './daemon-process.ts';
import { peek } from './peek.ts';
import { KINDS, send, SESSION_KINDS, XCASHU_KINDS, type Kind } from './traffic.ts';

export interface PhaseCtx {
  world: World;
  daemon: DaemonProcess;
  dir: string;
  key: string;
  model: string;
  random: () => number;
  /** Funding quotes the suite created (each checked at the end: paid means issued). */
  quotes: { id: string; amountSat: number }[];
  /** Requests the phases sent (their outcomes join the traffic's). */
  n: () => number;
  record(p: Promise<unknown>): void;
}

export interface Phase {
  name: string;
  /** Resolves at the moment to kill; returns what was seen there (evidence that the phase was hit). */
  run(c: PhaseCtx): Promise<string>;
}

const NWC_FUND_SAT = 300;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const kindOf = (c: PhaseCtx, kinds: readonly Kind[] = KINDS): Kind => kinds[Math.floor(c.random() * kinds.length)];
let refundKills = 0;
const swaps = (c: PhaseCtx) => c.world.mints[0].requestCounts()['POST /v1/swap'] ?? 0;

/** A request of a random kind (of `kinds`), sent now; its outcome recorded whatever happens. */
function fire(c: PhaseCtx, kinds: readonly Kind[] = KINDS, provider?: string): Promise<unknown> {
  const p = send(kindOf(c, kinds), c.daemon.base, c.key, c.model, c.n(), { provider });
  c.record(p);
  return p;
}

/** A deposit topping up a session that already holds money: its token taken, not yet credited. */
const topUpInFlight = (c: PhaseCtx) =>
  peek<{ id: string; held: number }>(c.dir, `SELECT p.payment_id AS id, s.deposited - s.charged - s.refunded - s.lost AS held
    FROM payments p JOIN wallet_sessions s ON s.session_id = p.session_id WHERE p.state = 'pending' AND s.deposited > 0 AND s.state = 'open'`)[0];

/** Where a session's refund is: our row (closing while asked), the wallet's (refunding while its token is swapped in). */
const refundState = (c: PhaseCtx, sessionId: string) =>
  peek<{ ours: string; wallet: string; queued: number }>(c.dir, `SELECT ps.state AS ours, ws.state AS wallet,
    (SELECT COUNT(*) FROM payment_change pc WHERE pc.payment_id = ps.session_id AND pc.state IN ('queued', 'swapping')) AS queued
    FROM provider_sessions ps JOIN wallet_sessions ws ON ws.session_id = ps.session_id WHERE ps.session_id = ?`, sessionId)[0];

export const PHASES: readonly Phase[] = [
  {
    // The wallet takes a token (selecting proofs, splitting at the mint when none fit).
    name: 'taking a token',
    async run(c) {
      const p = c.world.providers[0];
      c.world.mints[0].knobs.latencyMs = 400;
      const redeemed = p.stats().redeemed;
      const before = swaps(c);
      fire(c, XCASHU_KINDS);
      await sleep(20 + c.random() * 300);
      return `provider redeemed ${p.stats().redeemed - redeemed}, mint swaps ${swaps(c) - before}`;
    },
  },
  {
    // The node holds our token and thinks (redeemed, not yet answered).
    name: 'in flight',
    async run(c) {
      for (const p of c.world.providers) p.knobs.ttfbMs = 600;
      const p = c.world.providers;
      const redeemed = p.reduce((t, x) => t + x.stats().redeemed, 0);
      void fire(c);
      await until(() => p.reduce((t, x) => t + x.stats().redeemed, 0) > redeemed, 'a provider to take the token', 10_000);
      await sleep(c.random() * 400);
      return 'token redeemed, answer pending';
    },
  },
  {
    // The answer is in; its change is on its way into the wallet (queued, or the swap at the mint).
    name: 'receiving change',
    async run(c) {
      c.world.mints[0].knobs.latencyMs = 300;
      const before = swaps(c);
      await fire(c, XCASHU_KINDS);
      await until(() => swaps(c) > before, 'the change swap to start', 10_000);
      await sleep(c.random() * 250);
      return `change swap at the mint (${swaps(c) - before} swaps)`;
    },
  },
  {
    // The node has answered; the daemon settles the attempt and replies.
    name: 'settling',
    async run(c) {
      const p = c.world.providers;
      const done = p.reduce((t, x) => t + x.stats().succeeded, 0);
      void fire(c);
      await until(() => p.reduce((t, x) => t + x.stats().succeeded, 0) > done, 'a provider to answer', 10_000, 1);
      await sleep(c.random() * 5);
      return 'provider answered';
    },
  },
  {
    // A session short of room for the requests at hand: a deposit topping up its balance is taken
    // and on its way to the node, which redeems it at a slow mint (POST /v1/balance/topup).
    name: 'topping up a session',
    async run(c) {
      const alpha = c.world.providers[0];
      c.world.mints[0].knobs.latencyMs = 300;
      alpha.knobs.ttfbMs = 400; // the streams hold their reservations while the next ones arrive
      // Several at once on one session: the first deposit opens it (two worst cases), the ones
      // that do not fit top it up (under the cap of four worst cases).
      for (let i = 0; i < 4; i++) void fire(c, SESSION_KINDS, alpha.url);
      await until(() => topUpInFlight(c) !== undefined, 'a session top-up in flight', 15_000, 2);
      await sleep(c.random() * 400);
      const t = topUpInFlight(c);
      return t ? `top-up ${t.id} in flight, the session holding ${t.held} sat` : 'top-up credited';
    },
  },
  {
    // An idle session's balance coming home (the idle sweep), killed at its two steps in turn: the
    // node asked (POST /v1/balance/refund, slow between its read and its debit,
    // minting at a slow mint), or its token on its way into the wallet (the change queue's swap
    // at the slow mint).
    name: 'refunding a session',
    async run(c) {
      // A session at beta, which the background traffic (cheapest first: alpha) leaves idle.
      const beta = c.world.providers[1];
      const atBeta = () => peek<{ id: string }>(c.dir, `SELECT session_id AS id FROM provider_sessions WHERE provider_url = ? AND state = 'open' ORDER BY created_at DESC LIMIT 1`, beta.url)[0];
      for (let i = 0; i < 3 && !atBeta(); i++) await fire(c, SESSION_KINDS, beta.url);
      const s = atBeta();
      if (!s) throw new Error('three streams pinned to beta opened no session there');
      beta.knobs.refundDebitDelayMs = 300;
      c.world.mints[0].knobs.latencyMs = 300;
      const step = refundKills++ % 2 === 0 ? 'asked' : 'coming in';
      await until(() => refundState(c, s.id)?.ours !== 'open', 'the idle sweep to refund the session', 15_000, 2);
      if (step === 'coming in') await until(() => refundState(c, s.id)?.wallet !== 'open', 'the refund token', 10_000, 2);
      await sleep(c.random() * 250);
      const r = refundState(c, s.id);
      return `session refund (${step}): ours ${r?.ours}, wallet ${r?.wallet}, ${r?.queued ?? 0} token(s) to swap in`;
    },
  },
  {
    // `satroute wallet fund` paying through NWC: invoice out, payment and minting in progress.
    name: 'funding over NWC',
    async run(c) {
      c.world.mints[0].knobs.latencyMs = 150;
      const q = await control<{ quote_id: string }>(c.dir, 'wallet.fund.create', { amount_sat: NWC_FUND_SAT });
      c.quotes.push({ id: q.quote_id, amountSat: NWC_FUND_SAT });
      c.record(control(c.dir, 'wallet.fund.pay_nwc', { quote_id: q.quote_id }).catch(() => undefined));
      // The NWC request travels over the relay to the wallet service, which pays on Lightning;
      // the kill lands just after the invoice is paid, before (or while) the proofs are minted -
      // or, if the payment is slower than 3 s, while it is on its way.
      await until(() => c.world.mints[0].mintQuoteState(q.quote_id) !== 'UNPAID', 'the NWC payment', 3_000).catch(() => undefined);
      await sleep(c.random() * 100);
      return `quote ${c.world.mints[0].mintQuoteState(q.quote_id)}`;
    },
  },
];

/** Undo every phase's knobs (after a kill, before the restart). */
export function calm(world: World): void {
  for (const m of world.mints) m.knobs.latencyMs = 0;
  for (const p of world.providers) {
    p.knobs.ttfbMs = 0;
    p.knobs.refundDebitDelayMs = 0;
  }
}
