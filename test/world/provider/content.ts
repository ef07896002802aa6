// Deterministic fake upstream output: chat replies, SSE chunks, embeddings and token counts.
import { sha256 } from '@noble/hashes/sha2.js';
import { messageChars } from './pricing.ts';

/** Prompt tokens the fake upstream reports: ceil(characters / 4) of the text in the messages. */
export function promptTokensOf(messages: unknown): number {
  return Math.ceil(messageChars(messages) / 4);
}

/** Tokens of an embeddings `input` (string or array of strings): ceil(characters / 4). */
export function embeddingTokensOf(input: unknown): number {
  const parts = Array.isArray(input) ? input : [input];
  const chars = parts.reduce<number>((n, p) => n + (typeof p === 'string' ? p.length : 0), 0);
  return Math.ceil(chars / 4);
}

const TEXT_PARTS = new Set(['text', 'input_text']);

/** Text of a message content: a string, or the text parts of an array (chat, Anthropic and Responses part types). */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((p) => (TEXT_PARTS.has(String((p as { type?: unknown } | null)?.type)) ? String((p as { text?: unknown }).text ?? '') : ''))
    .join(' ');
}

/** The last user message's text; a Responses `input` may also be a plain string. */
export function lastUserText(messages: unknown): string {
  if (typeof messages === 'string') return messages;
  if (!Array.isArray(messages)) return '';
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown } | null;
    if (m?.role === 'user') return contentText(m.content);
  }
  return '';
}

/** Prompt tokens of a Responses request (instructions + input) or an Anthropic one (system + messages): ceil(characters / 4). */
export function inputTokensOf(system: unknown, input: unknown): number {
  let chars = contentText(system).length;
  if (typeof input === 'string') chars += input.length;
  else if (Array.isArray(input)) for (const m of input) chars += contentText((m as { content?: unknown } | null)?.content).length;
  return Math.ceil(chars / 4);
}

export interface Reply {
  content: string;
  completionTokens: number;
  finishReason: 'stop' | 'length';
}

/**
 * The fake upstream's answer: "<provider> heard: <last user message>", completion tokens
 * ceil(chars / 4) (or `forcedTokens`), cut at `maxTokens` with finish_reason "length".
 */
export function chatReply(provider: string, messages: unknown, maxTokens: number, forcedTokens: number | null): Reply {
  let content = `${provider} heard: ${lastUserText(messages).slice(0, 400)}`;
  let tokens = forcedTokens ?? Math.ceil(content.length / 4);
  let finishReason: Reply['finishReason'] = 'stop';
  if (tokens > maxTokens) {
    tokens = Math.max(0, maxTokens);
    content = content.slice(0, tokens * 4);
    finishReason = 'length';
  }
  return { content, completionTokens: tokens, finishReason };
}

/** A deterministic unit-ish vector for a text (8 dimensions from its SHA-256). */
export function embeddingOf(text: string): number[] {
  const h = sha256(new TextEncoder().encode(text));
  return Array.from({ length: 8 }, (_, i) => Math.round(((h[i] - 127.5) / 127.5) * 1e6) / 1e6);
}

/** The reply split into SSE content pieces of up to 16 characters (at least one piece). */
export function replyPieces(content: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < content.length; i += 16) pieces.push(content.slice(i, i + 16));
  return pieces.length ? pieces : [''];
}
