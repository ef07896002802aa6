// Where a SIGKILL lands, on purpose. Each phase slows the world where that phase waits (a real
// mint or node can be this slow: a mint answering in 400 ms, a node thinking for half a second),
// starts the work, and resolves at a seeded moment inside the phase; the suite then kills the
// daemon. Nothing in the daemon knows it is being tested. Adding a phase (e.g. the session mode's
// "topping up a session", "refunding a session") is one entry in PHASES.
import type { World } from '../world/index.ts';
import { control, until, type DaemonProcess } from './daemon-process.ts';
import { send, type Kind } from './traffic.ts';

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
const kindOf = (c: PhaseCtx): Kind => (['http', 'http-stream', 'ws', 'ws-stream'] as const)[Math.floor(c.random() * 4)];
const swaps = (c: PhaseCtx) => c.world.mints[0].requestCounts()['POST /v1/swap'] ?? 0;

/** A request of a random kind, sent now; its outcome recorded whatever happens. */
function fire(c: PhaseCtx): void {
  c.record(send(kindOf(c), c.daemon.base, c.key, c.model, c.n()));
}

export const PHASES: readonly Phase[] = [
  {
    // The wallet takes a token (selecting proofs, splitting at the mint when none fit).
    name: 'taking a token',
    async run(c) {
      const p = c.world.providers[0];
      c.world.mints[0].knobs.latencyMs = 400;
      const redeemed = p.stats().redeemed;
      const before = swaps(c);
      fire(c);
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
      fire(c);
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
      const answer = send(kindOf(c), c.daemon.base, c.key, c.model, c.n());
      c.record(answer);
      await answer;
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
      fire(c);
      await until(() => p.reduce((t, x) => t + x.stats().succeeded, 0) > done, 'a provider to answer', 10_000, 1);
      await sleep(c.random() * 5);
      return 'provider answered';
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
  for (const p of world.providers) p.knobs.ttfbMs = 0;
}
