// JSON as a Routstr node may write it. routstr-core re-serialises every answer with Python's
// json.dumps, whose default allow_nan=True writes a float NaN or infinity bare (`NaN`,
// `Infinity`, `-Infinity`): not JSON, so JSON.parse refuses the whole answer - the reply a
// client paid for would be lost over one bad usage field. Read such text with those tokens as
// the numbers they name; the cost and usage readers (cost.ts) then refuse them field by field,
// with the evidence, and the rest of the answer stands.

const TOKENS: readonly [string, number][] = [
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-Infinity', Number.NEGATIVE_INFINITY],
];
// Placeholders written in place of the bare tokens. A provider string spelling the same escape
// would be read as the token too: harmless, a count or cost that is a string is refused anyway.
const MARK = '\u0001';
const placeholder = (i: number) => `"\\u0001${i}"`;

/**
 * Parse JSON text, accepting Python's bare NaN, Infinity and -Infinity outside strings.
 * Undefined when the text is not JSON even so. Standard JSON takes the JSON.parse path alone.
 */
export function parseNodeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // below
  }
  const swapped = replaceBareTokens(text);
  if (swapped === undefined) return undefined;
  try {
    return revive(JSON.parse(swapped));
  } catch {
    return undefined;
  }
}

/** The text with every bare NaN/Infinity/-Infinity outside a string replaced by a placeholder; undefined when there is none. */
function replaceBareTokens(text: string): string | undefined {
  let out = '';
  let from = 0;
  let inString = false;
  let found = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      continue;
    }
    if (c !== 0x4e && c !== 0x49 && c !== 0x2d) continue; // N, I, -
    const k = TOKENS.findIndex(([t]) => text.startsWith(t, i));
    if (k < 0) continue;
    out += text.slice(from, i) + placeholder(k);
    i += TOKENS[k][0].length - 1;
    from = i + 1;
    found = true;
  }
  return found ? out + text.slice(from) : undefined;
}

function revive(v: unknown): unknown {
  if (typeof v === 'string') return v.length >= 2 && v[0] === MARK ? (TOKENS[Number(v.slice(1))]?.[1] ?? v) : v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = revive(v[i]);
    return v;
  }
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      const r = revive(o[k]);
      // defineProperty: a key named __proto__ stays a plain property
      if (r !== o[k]) Object.defineProperty(o, k, { value: r, writable: true, enumerable: true, configurable: true });
    }
  }
  return v;
}
