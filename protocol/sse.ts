// Server-sent events: an incremental reader and a writer (WHATWG HTML "server-sent events").
//
// The reader takes text as it arrives, in pieces of any size, and returns each complete event.
// Lines end in `\n`, `\r\n` or `\r` (a `\r` ending a piece ends its line at once; a `\n`
// opening the next piece is then its second half, not a blank line); `data:` lines of one event are joined with `\n`;
// `event:` names it; comments (`:`) and `id:`/`retry:` are read and dropped. One tolerance
// beyond the spec: at the end of the stream a pending event without its blank line is still
// delivered, because routstr-core's X-Cashu replay strips the stream and re-joins it line by
// line, so its last line (`data: [DONE]`) ends with a single `\n` (upstream/base.py
// handle_x_cashu_streaming_response: `content_str.strip().split("\n")`, `line + "\n"`).
// The reader knows nothing about JSON: what a data payload means is its caller's business.

/** One event: its name (absent: the default "message") and its data lines joined by `\n`. */
export interface SseEvent {
  event?: string;
  data: string;
}

/** A line or an event grew past the reader's limit (a provider streaming garbage). */
export class SseLimitError extends Error {
  override name = 'SseLimitError';
  constructor(readonly limitBytes: number) {
    super(`server-sent event larger than ${limitBytes} characters`);
  }
}

export const DEFAULT_MAX_EVENT_CHARS = 4 * 1024 * 1024;

export class SseReader {
  /** The unfinished line, in the pieces it arrived in: joined only once a line end arrives, so a
   * long line fed in many small pieces costs linear time, not a copy and a rescan per piece. */
  private pending: string[] = [];
  private pendingChars = 0;
  private data: string[] = [];
  private dataChars = 0;
  private eventName: string | undefined;
  private started = false;
  /** The last piece ended in `\r`: a `\n` opening the next one belongs to it. */
  private afterCR = false;
  private readonly maxChars: number;

  constructor(options: { maxEventChars?: number } = {}) {
    this.maxChars = options.maxEventChars ?? DEFAULT_MAX_EVENT_CHARS;
  }

  /** Feed the next piece of text; returns the events it completed (often none or one). */
  push(text: string): SseEvent[] {
    if (!this.started && text.length) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (!text.length) return [];
    if (this.afterCR && text.charCodeAt(0) === 10) text = text.slice(1);
    this.afterCR = false;
    if (!text.length) return [];
    const out: SseEvent[] = [];
    if (text.indexOf('\n') === -1 && text.indexOf('\r') === -1) {
      this.pending.push(text);
      this.pendingChars += text.length;
    } else {
      // The pending pieces hold no line end: the search starts where the new text does.
      const from = this.pendingChars;
      const buf = from ? this.pending.join('') + text : text;
      this.pending = [];
      this.pendingChars = 0;
      const rest = this.drain(buf, from, out);
      if (rest.length) {
        this.pending.push(rest);
        this.pendingChars = rest.length;
      }
    }
    if (this.pendingChars > this.maxChars) throw new SseLimitError(this.maxChars);
    return out;
  }

  /** The stream ended: whatever is pending (an unterminated line, an event without its blank line). */
  end(): SseEvent[] {
    const out: SseEvent[] = [];
    if (this.pendingChars) this.line(this.pending.join(''), out);
    this.pending = [];
    this.pendingChars = 0;
    this.dispatch(out);
    return out;
  }

  /** Read every complete line of `buf` (none before `from`); returns the unfinished rest. */
  private drain(buf: string, from: number, out: SseEvent[]): string {
    let start = 0;
    // Each search position is kept until passed, so a burst of many lines is read in one pass
    // (-1 means "none up to the end" for good).
    let nl = buf.indexOf('\n', from);
    let cr = buf.indexOf('\r', from);
    for (;;) {
      if (nl !== -1 && nl < start) nl = buf.indexOf('\n', start);
      if (cr !== -1 && cr < start) cr = buf.indexOf('\r', start);
      let end: number;
      let next: number;
      if (cr !== -1 && (nl === -1 || cr < nl)) {
        if (cr === buf.length - 1) this.afterCR = true;
        end = cr;
        next = buf.charCodeAt(cr + 1) === 10 ? cr + 2 : cr + 1;
      } else if (nl !== -1) {
        end = nl;
        next = nl + 1;
      } else break;
      this.line(buf.slice(start, end), out);
      start = next;
    }
    return start ? buf.slice(start) : buf;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line.length === 0) return this.dispatch(out);
    if (line.charCodeAt(0) === 58 /* : */) return; // comment (keep-alive pings)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') {
      this.dataChars += value.length + 1;
      if (this.dataChars > this.maxChars) throw new SseLimitError(this.maxChars);
      this.data.push(value);
    } else if (field === 'event') {
      this.eventName = value;
    }
    // id, retry and unknown fields: nothing a provider call needs.
  }

  private dispatch(out: SseEvent[]): void {
    if (this.data.length) {
      const ev: SseEvent = { data: this.data.length === 1 ? this.data[0] : this.data.join('\n') };
      if (this.eventName) ev.event = this.eventName;
      out.push(ev);
    }
    this.data = [];
    this.dataChars = 0;
    this.eventName = undefined;
  }
}

/** The event that ends an OpenAI-style stream. */
export const SSE_DONE = 'data: [DONE]\n\n';

/** One event as text: `event:` when named, one `data:` line per line of `data`, a blank line. */
export function formatSseEvent(data: string, event?: string): string {
  const head = event ? `event: ${event}\n` : '';
  if (data.indexOf('\n') === -1 && data.indexOf('\r') === -1) return `${head}data: ${data}\n\n`;
  return `${head}${data
    .split(/\r\n|\r|\n/)
    .map((l) => `data: ${l}\n`)
    .join('')}\n`;
}
