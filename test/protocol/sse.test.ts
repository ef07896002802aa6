import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatSseEvent, SSE_DONE, SseLimitError, SseReader, type SseEvent } from '../../protocol/sse.ts';

function readAll(pieces: string[], opts?: { maxEventChars?: number }): SseEvent[] {
  const r = new SseReader(opts);
  const out: SseEvent[] = [];
  for (const p of pieces) out.push(...r.push(p));
  out.push(...r.end());
  return out;
}

test('events separated by blank lines come out one by one, with LF, CRLF or CR line ends', () => {
  for (const eol of ['\n', '\r\n', '\r']) {
    const text = `data: {"a":1}${eol}${eol}data: {"b":2}${eol}${eol}data: [DONE]${eol}${eol}`;
    assert.deepEqual(readAll([text]), [{ data: '{"a":1}' }, { data: '{"b":2}' }, { data: '[DONE]' }], JSON.stringify(eol));
  }
});

test('an event split anywhere across network reads is still read whole, even a CRLF cut in half', () => {
  const r = new SseReader();
  assert.deepEqual(r.push('data: {"x"'), []);
  assert.deepEqual(r.push(':1}\r'), []);
  assert.deepEqual(r.push('\n\r'), [{ data: '{"x":1}' }]);
  assert.deepEqual(r.push('\ndata: y\r\n\r\n'), [{ data: 'y' }]);
  assert.deepEqual(r.end(), []);
});

test('multi-line data is joined with newlines and the event name is kept', () => {
  assert.deepEqual(readAll(['event: cost\ndata: {"cost":\ndata: {"total_msats": 5}}\n\n']), [{ event: 'cost', data: '{"cost":\n{"total_msats": 5}}' }]);
});

test('comments, id and retry lines are ignored and a field without a space after the colon is read', () => {
  assert.deepEqual(readAll([': keep-alive\n\nid: 7\nretry: 100\ndata:tight\n\n']), [{ data: 'tight' }]);
});

test("routstr's replayed stream whose last [DONE] line has no blank line after it still ends with [DONE]", () => {
  // upstream/base.py handle_x_cashu_streaming_response yields each line of content_str.strip() + "\n".
  const replay = 'data: {"a":1}\n\ndata: {"usage":{}}\n\ndata: [DONE]\n';
  assert.deepEqual(readAll([replay]), [{ data: '{"a":1}' }, { data: '{"usage":{}}' }, { data: '[DONE]' }]);
});

test('a leading byte-order mark is dropped', () => {
  assert.deepEqual(readAll(['\ufeffdata: x\n\n']), [{ data: 'x' }]);
});

test('a provider streaming an endless line is stopped at the limit', () => {
  const r = new SseReader({ maxEventChars: 1000 });
  assert.throws(() => r.push('data: ' + 'x'.repeat(2000)), SseLimitError);
  const r2 = new SseReader({ maxEventChars: 1000 });
  assert.throws(() => {
    for (let i = 0; i < 100; i++) r2.push(`data: ${'y'.repeat(50)}\n`);
  }, SseLimitError);
});

test('whatever the events and however the text is cut, the reader returns exactly what the writer wrote', () => {
  const eventArb = fc.record({ event: fc.option(fc.stringMatching(/^[a-z.]{1,12}$/), { nil: undefined }), data: fc.string({ maxLength: 40 }) });
  fc.assert(
    fc.property(fc.array(eventArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), fc.constantFrom('\n', '\r\n', '\r'), (events, cuts, eol) => {
      const text = events.map((e) => formatSseEvent(e.data, e.event).replace(/\n/g, eol)).join('');
      const points = [...new Set(cuts.map((c) => (text.length ? c % text.length : 0)))].sort((a, b) => a - b);
      const pieces: string[] = [];
      let prev = 0;
      for (const p of points) {
        pieces.push(text.slice(prev, p));
        prev = p;
      }
      pieces.push(text.slice(prev));
      const expected = events.map((e) => {
        const out: SseEvent = { data: e.data.replace(/\r\n|\r/g, '\n') };
        if (e.event) out.event = e.event;
        return out;
      });
      assert.deepEqual(readAll(pieces), expected);
    }),
    { numRuns: 300, seed: 1305 },
  );
});

test('the writer ends an OpenAI stream with [DONE]', () => {
  assert.equal(SSE_DONE, 'data: [DONE]\n\n');
  assert.equal(formatSseEvent('{"a":1}'), 'data: {"a":1}\n\n');
  assert.equal(formatSseEvent('a\nb', 'cost'), 'event: cost\ndata: a\ndata: b\n\n');
});
