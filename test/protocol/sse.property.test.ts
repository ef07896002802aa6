// Hostile input for the SSE reader: whatever a provider streams, cut however the network cuts
// it, the reader gives the same events, and only ever fails with SseLimitError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StringDecoder } from 'node:string_decoder';
import fc from 'fast-check';
import { formatSseEvent, SseLimitError, SseReader, type SseEvent } from '../../protocol/sse.ts';
import { assertProperty } from '../property.ts';

type Outcome = { events: SseEvent[] } | { limit: number };

/** Read text pieces to the end; a SseLimitError is an outcome, any other error fails the test. */
function read(pieces: string[], maxEventChars?: number): Outcome {
  const r = new SseReader({ maxEventChars });
  const events: SseEvent[] = [];
  try {
    for (const p of pieces) events.push(...r.push(p));
    events.push(...r.end());
  } catch (err) {
    if (err instanceof SseLimitError) return { limit: err.limitBytes };
    throw err;
  }
  return { events };
}

/** Bytes cut at the given offsets, decoded the way provider-stream decodes them. */
function decodePieces(bytes: Buffer, cuts: number[]): string[] {
  const decoder = new StringDecoder('utf8');
  const pieces: string[] = [];
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    pieces.push(decoder.write(bytes.subarray(prev, c)));
    prev = c;
  }
  pieces.push(decoder.end());
  return pieces;
}

// Characters that matter to the framing, plus any code point (astral ones span 4 UTF-8 bytes).
const char = fc.oneof(fc.constantFrom('\n', '\r', ':', ' ', 'd', 'a', 't', 'e', '\ufeff', 'é', '😀'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }));
const eol = fc.constantFrom('\n', '\r\n', '\r');
const eventArb = fc.record({
  event: fc.option(fc.stringMatching(/^[a-z_.]{1,12}$/), { nil: undefined }),
  data: fc.string({ unit: char, maxLength: 24 }),
});

/** A well-formed stream with a line end of its own for every line. */
const streamArb = fc.array(fc.tuple(eventArb, fc.array(eol, { minLength: 8, maxLength: 8 })), { maxLength: 5 }).map((list) => {
  let text = '';
  const expected: SseEvent[] = [];
  for (const [e, eols] of list) {
    let i = 0;
    let last = '';
    // A CR line end followed by an LF one would read as one CRLF: write CRLF for the second then.
    text += formatSseEvent(e.data, e.event).replace(/\n/g, () => {
      const next = eols[i++ % eols.length];
      last = last.endsWith('\r') && next === '\n' ? '\r\n' : next;
      return last;
    });
    const out: SseEvent = { data: e.data.replace(/\r\n|\r/g, '\n') };
    if (e.event) out.event = e.event;
    expected.push(out);
  }
  return { text, expected };
});

test('an event stream cut at every byte boundary, or byte by byte, reads as the same events, whatever the line ends', () => {
  assertProperty(
    fc.property(streamArb, ({ text, expected }) => {
      const bytes = Buffer.from(text, 'utf8');
      assert.deepEqual(read([text]), { events: expected });
      for (let k = 0; k <= bytes.length; k++) assert.deepEqual(read(decodePieces(bytes, [k])), { events: expected }, `cut at byte ${k}`);
      assert.deepEqual(read(decodePieces(bytes, [...bytes.keys()])), { events: expected }, 'one byte at a time');
    }),
    { seed: 1301, numRuns: 150 },
  );
});

test('any text at all, cut anywhere, reads the same as in one piece and fails only with SseLimitError', () => {
  assertProperty(
    fc.property(fc.string({ unit: char, maxLength: 200 }), fc.array(fc.nat(), { maxLength: 12 }), (text, rawCuts) => {
      const bytes = Buffer.from(text, 'utf8');
      const cuts = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const whole = read([text]);
      assert.deepEqual(read(decodePieces(bytes, cuts)), whole);
      if ('events' in whole) {
        const chars = whole.events.reduce((n, e) => n + e.data.length, 0);
        assert.ok(chars <= text.length, 'no event is longer than what was sent');
      }
    }),
    { seed: 1302, numRuns: 400 },
  );
});

test('a line or an event longer than the limit is refused with SseLimitError however it is cut, and no event over the limit ever comes out', () => {
  assertProperty(
    fc.property(
      fc.integer({ min: 1, max: 64 }),
      fc.string({ unit: char, maxLength: 300 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (limit, text, rawCuts) => {
        const cuts = [...new Set(rawCuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const pieces = cuts.map((c, i) => text.slice(i ? cuts[i - 1] : 0, c)).concat(text.slice(cuts.at(-1) ?? 0));
        const out = read(pieces, limit);
        if ('limit' in out) assert.equal(out.limit, limit);
        else for (const e of out.events) assert.ok(e.data.length <= limit, `event of ${e.data.length} chars passed a ${limit}-char limit`);
      },
    ),
    { seed: 1303, numRuns: 400 },
  );
  assertProperty(
    fc.property(fc.integer({ min: 1, max: 64 }), fc.nat({ max: 200 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }), eol, (limit, extra, sizes, end) => {
      const text = `data: ${'x'.repeat(limit + extra)}${end}${end}`;
      const pieces: string[] = [];
      for (let at = 0, i = 0; at < text.length; i++) {
        pieces.push(text.slice(at, at + sizes[i % sizes.length]));
        at += sizes[i % sizes.length];
      }
      assert.deepEqual(read(pieces, limit), { limit });
    }),
    { seed: 1304, numRuns: 200 },
  );
});
