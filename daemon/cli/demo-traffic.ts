// The demo's requests: streaming and non-streaming, over the WebSocket and over HTTP with the
// official OpenAI client, then an outage at the provider the router prefers - failover on screen,
// and its breaker opening after three failures in a row. Each request is shown from the daemon's
// own books (the request ledger): who was tried, what was sent, what came back, what it cost.
import type { Daemon } from '../daemon.ts';
import { queryAttempts, queryRequests } from '../requests/audit.ts';
import { msatAsSat } from './keys.ts';
import { DemoSocket, httpChat, httpEmbed, openaiClient, type Outcome, type ProviderEvent } from './demo-client.ts';
import type { Screen } from './demo-screen.ts';

/** The parts of the local world the demo turns knobs on. */
export interface DemoProviderKnobs {
  knobs: { failureRate: number; latencyMs: number };
}

export interface TrafficDeps {
  daemon: Daemon;
  screen: Screen;
  httpBase: string;
  wsUrl: string;
  key: string;
  /** A world provider by its scenario name. */
  provider(name: string): DemoProviderKnobs;
}

export interface TrafficResult {
  /** Requests sent, and those that ended with an answer. */
  requests: number;
  succeeded: number;
  /** Requests that got their answer from another provider than the first one tried. */
  failovers: number;
  breakerOpened: boolean;
  /** Requests that should have gone one way and did not, each in a line. */
  problems: string[];
}

const CHAT = '/v1/chat/completions';
const ask = (content: string) => [{ role: 'user' as const, content }];

export async function runTraffic(d: TrafficDeps): Promise<TrafficResult> {
  const { screen } = d;
  const result: TrafficResult = { requests: 0, succeeded: 0, failovers: 0, breakerOpened: false, problems: [] };
  const names = providerNames(d.daemon);
  const socket = await DemoSocket.open(d.wsUrl, d.key);
  const breakerOpen = new Set<string>();
  socket.onProviders = (e: ProviderEvent) => {
    if (e.kind !== 'breaker') return;
    if (e.state === 'open') breakerOpen.add(names(e.provider));
    screen.line(`    [providers event] ${names(e.provider)}: breaker ${e.state}${e.model ? ` for ${e.model}` : ''}${e.detail ? ` (${e.detail})` : ''}`);
  };
  const http = await openaiClient(d.httpBase, d.key);
  let n = 0;
  const ids: string[] = [];
  let mark = Date.now();
  /** Show a request once it ended; `ms` defaults to the time since the last one was shown. */
  const show = (label: string, o: Outcome, ms = Date.now() - mark) => {
    mark = Date.now();
    result.requests++;
    if (o.requestId) ids.push(o.requestId);
    const line = describe(d.daemon, names, o);
    if (!o.error) result.succeeded++;
    if (line.failedOver) result.failovers++;
    screen.line(`  #${String(n).padEnd(2)} ${o.via.padEnd(4)} ${label.padEnd(34)} ${line.text}  ${(ms / 1000).toFixed(1)} s`);
    return line;
  };
  try {
    screen.section('4. Requests over the WebSocket (/v1/ws) and HTTP (the official openai client)');
    screen.line('  each line: who was tried, what the wallet sent, the change that came back, what the provider kept');
    const mini = { max_tokens: 60 };
    n++, show('chat gpt-4o-mini', await socket.request(`q${n}`, CHAT, { model: 'gpt-4o-mini', messages: ask('Say hello to satroute.'), ...mini }));
    n++, show('chat gpt-4o-mini, streamed', await socket.request(`q${n}`, CHAT, { model: 'gpt-4o-mini', messages: ask('Count to five.'), stream: true, ...mini }));
    n++, show('chat claude-3-5-haiku', await httpChat(http, { model: 'claude-3-5-haiku', messages: ask('A haiku about ecash.'), max_tokens: 60 }, false));
    n++, show('chat llama-3.1-8b, streamed', await httpChat(http, { model: 'meta-llama/llama-3.1-8b-instruct', messages: ask('Why route by price?'), max_tokens: 60 }, true));
    n++, show('embeddings text-embedding-3-small', await httpEmbed(http, 'openai/text-embedding-3-small', ['sats', 'routes']));
    n++, show('chat gpt-4o-mini', await httpChat(http, { model: 'openai/gpt-4o-mini', messages: ask('What is Cashu?'), max_tokens: 60 }, false));
    n++, show('chat gpt-4o-mini, streamed', await socket.request(`q${n}`, CHAT, { model: 'openai/gpt-4o-mini', messages: ask('And Routstr?'), stream: true, ...mini }));
    n++, show('chat claude-3-5-haiku, streamed', await socket.request(`q${n}`, CHAT, { model: 'claude-3-5-haiku', messages: ask('Another haiku.'), stream: true, ...mini }));

    screen.section('5. Failover, and a breaker opening');
    const victim = 'alpha';
    const model = 'meta-llama/llama-3.1-8b-instruct';
    screen.line(`  ${victim} is the cheapest working provider of ${model}. Its upstream now fails every request`);
    screen.line(`  (world knob failureRate=1: a 502 after redeeming the token, the refund in the answer).`);
    screen.line('  Three requests at once: each tries it first, gets its refund, and fails over to the next provider.');
    const knobs = d.provider(victim).knobs;
    const saved = { ...knobs };
    knobs.failureRate = 1;
    knobs.latencyMs = 800; // the three are planned before the first failure comes back, even on a busy machine
    try {
      const burstStart = Date.now();
      const burst = await Promise.all([1, 2, 3].map((i) => socket.request(`burst${i}`, CHAT, { model, messages: ask(`Request ${i} of three.`), ...mini })));
      const burstMs = Date.now() - burstStart;
      for (const o of burst) {
        n++;
        const line = show(`chat llama-3.1-8b (at once)`, o, burstMs);
        if (!line.failedOver) result.problems.push(`burst request #${n} did not fail over from ${victim}`);
      }
      await until(() => breakerOpen.has(victim), 5_000);
      result.breakerOpened = breakerOpen.has(victim);
      if (!result.breakerOpened) result.problems.push(`${victim}'s breaker did not open after three failures`);
      screen.line(`  The next request does not try ${victim} at all while its breaker is open:`);
      n++;
      const after = show('chat llama-3.1-8b', await socket.request(`q${n}`, CHAT, { model, messages: ask('Are you there?'), ...mini }));
      if (after.tried.includes(victim)) result.problems.push(`a request tried ${victim} while its breaker was open`);
    } finally {
      Object.assign(knobs, { failureRate: saved.failureRate, latencyMs: saved.latencyMs });
    }
    screen.line(`  (${victim}'s upstream is back; after the breaker's open time, 30 s, one probe request would close it.)`);
    // Every request that was admitted settles with a payments event (HTTP ones too).
    const told = () => ids.filter((id) => socket.payments.some((p) => p.request_id === id)).length;
    await until(() => told() === ids.length, 5_000);
    screen.line(`  payments topic: an event for ${told()} of the ${ids.length} requests admitted`);
    if (told() < ids.length) result.problems.push(`the payments topic told of ${told()} requests, not ${ids.length}`);
  } finally {
    await socket.close();
  }
  return result;
}

/** Wait (polling) until cond() holds or the time is up. */
export async function until(cond: () => boolean, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return true;
}

/** A provider's name for people, from its id or URL. */
export function providerNames(daemon: Daemon): (idOrUrl: string | null) => string {
  return (idOrUrl) => {
    if (!idOrUrl) return '-';
    const p = daemon.market.providers().find((v) => v.id === idOrUrl || v.url === idOrUrl || v.name === idOrUrl);
    return p?.name ?? idOrUrl.slice(0, 12);
  };
}

/** One request, as the books have it. */
function describe(daemon: Daemon, names: (id: string | null) => string, o: Outcome): { text: string; failedOver: boolean; tried: string[] } {
  if (!o.requestId) return { text: `FAILED ${o.error?.code ?? ''}: ${o.error?.message ?? 'no request id'}`, failedOver: false, tried: [] };
  const attempts = queryAttempts(daemon.db).filter((a) => a.requestId === o.requestId);
  const row = queryRequests(daemon.db).find((r) => r.id === o.requestId);
  const tried = attempts.map((a) => names(a.providerId));
  const trail = attempts.map((a) => (a.status === 'succeeded' ? names(a.providerId) : `${names(a.providerId)} (${a.httpStatus ?? a.errorCode ?? a.status}, refunded)`)).join(' -> ');
  if (!row) return { text: `${trail} ?`, failedOver: false, tried };
  const failedOver = attempts.length > 1 && row.status === 'succeeded';
  const money = `sent ${row.sentSat} sat, change ${row.changeSat}${row.feeSat ? `, fee ${row.feeSat}` : ''}, kept ${msatAsSat(row.chargedMsat)} (expected ${row.expectedMsat === null ? '-' : msatAsSat(row.expectedMsat)})`;
  const flags = row.flags.length ? `  [${row.flags.join(',')}]` : '';
  const status = o.error ? `FAILED ${o.error.code}` : row.status;
  return { text: `${trail.padEnd(10)} ${status}  ${money}${flags}`, failedOver, tried };
}
