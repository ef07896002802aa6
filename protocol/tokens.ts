// Prompt token estimates for ranking: a real tokenizer (gpt-tokenizer, o200k_base) for prompts
// small enough to count within the request's time budget, a calibrated characters-per-token
// estimate for larger ones (calibrated by the exact counts this process made). The router
// corrects either per provider and model by what that provider reported (daemon/route/stats).
// Loading the tokenizer's table takes ~0.5 s of CPU, so it is loaded once, on demand
// (`load()` at daemon start); until then every estimate is the calibrated one.

/** OpenAI's chat accounting: tokens per message for role and framing, and for priming the reply. */
const TOKENS_PER_MESSAGE = 3;
const TOKENS_PER_REPLY = 3;
/** Prompts longer than this are estimated, not tokenized (~30 us per 1,000 characters on this machine). */
export const DEFAULT_MAX_EXACT_CHARS = 4_000;
/** Characters per token before any exact count calibrated it (English text, o200k_base). */
const INITIAL_CHARS_PER_TOKEN = 4;
/** Message texts whose count is remembered (each at most maxExactChars: a few MB at most). */
const COUNTED_TEXTS = 256;

export interface PromptEstimate {
  tokens: number;
  /** Counted by the tokenizer (true) or estimated from characters (false). */
  exact: boolean;
  /** Characters of prompt text (UTF-16 units). */
  chars: number;
}

type CountTokens = (text: string) => number;

export class PromptTokenizer {
  private count: CountTokens | undefined;
  private loading: Promise<void> | undefined;
  // running calibration: characters and tokens of the exact counts so far (decayed)
  private calChars = 0;
  private calTokens = 0;
  private readonly maxExactChars: number;
  /**
   * Counts of recent texts, oldest first: a chat sends its system prompt and every earlier turn
   * again with each request, so most of its parts were counted before (~30 us per 1,000 characters).
   */
  private readonly counted = new Map<string, number>();

  constructor(o: { maxExactChars?: number; countTokens?: CountTokens } = {}) {
    this.maxExactChars = o.maxExactChars ?? DEFAULT_MAX_EXACT_CHARS;
    this.count = o.countTokens;
  }

  /** Load the tokenizer (once). Estimates before it resolves are calibrated, not exact. */
  load(): Promise<void> {
    if (this.count) return Promise.resolve();
    this.loading ??= import('gpt-tokenizer/encoding/o200k_base').then((m) => {
      this.count = (text) => m.countTokens(text);
    });
    return this.loading;
  }

  get loaded(): boolean {
    return this.count !== undefined;
  }

  /** Characters per token the estimate uses now. */
  get charsPerToken(): number {
    return this.calTokens > 0 ? this.calChars / this.calTokens : INITIAL_CHARS_PER_TOKEN;
  }

  /** Prompt tokens of an OpenAI chat, embeddings or responses body. */
  estimate(body: unknown): PromptEstimate {
    const { parts, messages } = promptParts(body);
    let chars = 0;
    for (const p of parts) chars += p.length;
    const framing = messages > 0 ? messages * TOKENS_PER_MESSAGE + TOKENS_PER_REPLY : 0;
    if (this.count && chars <= this.maxExactChars) {
      let tokens = 0;
      for (const p of parts) tokens += p.length ? this.countOnce(p) : 0;
      if (chars > 0) this.calibrate(chars, tokens);
      return { tokens: tokens + framing, exact: true, chars };
    }
    return { tokens: Math.ceil(chars / this.charsPerToken) + framing, exact: false, chars };
  }

  private countOnce(text: string): number {
    let n = this.counted.get(text);
    if (n === undefined) {
      n = this.count!(text);
      if (this.counted.size >= COUNTED_TEXTS) this.counted.delete(this.counted.keys().next().value!);
      this.counted.set(text, n);
    }
    return n;
  }

  private calibrate(chars: number, tokens: number): void {
    // an exponentially weighted ratio: recent prompts count most, no one prompt dominates
    const keep = 0.98;
    this.calChars = this.calChars * keep + chars;
    this.calTokens = this.calTokens * keep + tokens;
  }
}

/** The text pieces of a request body that become prompt tokens, and its number of messages. */
export function promptParts(body: unknown): { parts: string[]; messages: number } {
  const parts: string[] = [];
  let messages = 0;
  if (!isObject(body)) return { parts, messages };
  const addContent = (content: unknown) => {
    if (typeof content === 'string') parts.push(content);
    else if (Array.isArray(content)) {
      for (const item of content) {
        if (typeof item === 'string') parts.push(item);
        else if (isObject(item) && typeof item.text === 'string') parts.push(item.text);
      }
    }
  };
  const addMessages = (list: unknown[]) => {
    for (const m of list) {
      if (typeof m === 'string') {
        parts.push(m);
        continue;
      }
      if (!isObject(m)) continue;
      messages++;
      addContent(m.content);
      if (typeof m.name === 'string') parts.push(m.name);
      if (Array.isArray(m.tool_calls)) {
        for (const c of m.tool_calls) {
          const f = isObject(c) && isObject(c.function) ? c.function : undefined;
          if (f && typeof f.name === 'string') parts.push(f.name);
          if (f && typeof f.arguments === 'string') parts.push(f.arguments);
        }
      }
    }
  };
  if (Array.isArray(body.messages)) addMessages(body.messages); // chat completions
  if (typeof body.system === 'string') parts.push(body.system); // anthropic messages
  if (typeof body.instructions === 'string') parts.push(body.instructions); // responses
  if (typeof body.input === 'string') parts.push(body.input); // embeddings, responses
  else if (Array.isArray(body.input)) addMessages(body.input);
  if (typeof body.prompt === 'string') parts.push(body.prompt);
  if (Array.isArray(body.tools) && body.tools.length) parts.push(JSON.stringify(body.tools));
  return { parts, messages };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
