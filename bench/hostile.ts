// `hostile` bench case: what the worst input at the edge costs (CPU time, one core), each beside
// the same amount of well-behaved input. Targets: linear in the input, so the ratio stays small.
//   sse_long_line_ms          an 8 MB SSE line fed in 64-byte pieces (a provider trickling one
//                             endless line) vs 8 MB of short comment lines in the same pieces;
//                             was quadratic (2 MB in 1 KB pieces took 7.3 s, in 64-byte pieces 151 s)
//   cost_header_worst_ms      a 16 KB X-Routstr-Cost-Msats header of digits that does not
//                             parse vs a short valid one x 1,000; was ~160 ms (backtracking)
//   body_depth_check_ms       the nesting check of a 10 MB request body of small objects,
//                             vs JSON.parse of the same text (the check must stay well below)
import { performance } from 'node:perf_hooks';
import type { Figure } from './_figure.ts';
import { headerMsatValue } from '../protocol/cost.ts';
import { MAX_BODY_DEPTH, nestedDeeperThan } from '../protocol/openai.ts';
import { SseReader } from '../protocol/sse.ts';

function time(fn: () => void, repeat = 3): number {
  let best = Infinity;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

export async function run(): Promise<Figure[]> {
  const size = 8 * 1024 * 1024;
  const piece = 'x'.repeat(64);
  const trickle = time(() => {
    const r = new SseReader({ maxEventChars: size + 16 });
    r.push('data: ');
    for (let i = 0; i < size / piece.length; i++) r.push(piece);
    if (r.push('\n\n').length !== 1) throw new Error('event lost');
  });
  const short = `:${'x'.repeat(62)}\n`;
  const once = time(() => {
    const r = new SseReader({ maxEventChars: size + 16 });
    for (let i = 0; i < size / short.length; i++) r.push(short);
  });

  const bad = `1.${'1'.repeat(16 * 1024)}x`;
  const worst = time(() => void headerMsatValue(bad), 5);
  const valid = time(() => {
    for (let i = 0; i < 1000; i++) headerMsatValue('123456');
  }, 5);

  const text = JSON.stringify({ model: 'm', messages: Array.from({ length: 100_000 }, (_, i) => ({ role: 'user', content: `message ${i} `.repeat(8) })) });
  let parsed: unknown;
  const parse = time(() => void (parsed = JSON.parse(text)));
  const check = time(() => {
    if (nestedDeeperThan(parsed, MAX_BODY_DEPTH)) throw new Error('too deep?');
  });

  return [
    { name: 'sse_long_line_ms', value: trickle, unit: 'ms', baseline: once, ratio: trickle / once },
    { name: 'cost_header_worst_ms', value: worst, unit: 'ms', baseline: valid, ratio: worst / valid },
    { name: 'body_depth_check_ms', value: check, unit: 'ms', baseline: parse, ratio: check / parse },
  ];
}
