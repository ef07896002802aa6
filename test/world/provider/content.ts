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

function lastUserText(messages: unknown): string {
  if (!Array.isArray(messages)) return '';
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown } | null;
    if (m?.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.content)) {
      return m.content
        .map((p) => ((p as { type?: unknown })?.type === 'text' ? String((p as { text?: unknown }).text ?? '') : ''))
        .join(' ');
    }
  }
  return '';
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
