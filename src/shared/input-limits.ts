import { z } from 'zod';
/**
 * Bounds on everything a user hands chatq (docs/behaviour.md, "Limits and safety"). Each is checked at parse time; a line
 * over one is a bad line with its reason.
 */
export const LIMITS = {
  /** One input line, in bytes (a base64 image inside a line counts). */
  lineBytes: 2 * 1024 * 1024,
  /** Nesting of JSON objects and arrays in one line. */
  depth: 64,
  messages: 1_000,
  turns: 1_000,
  /** max_tokens / max_completion_tokens. */
  maxTokens: 1_048_576,
  customIdChars: 512,
  scriptIdChars: 400,
  userChars: 1_024,
  modelChars: 200,
  /** An expectation's regex pattern. */
  regexChars: 1_000,
  /** A judge expectation's answer, rubric or prompt template. */
  judgeChars: 16_384,
  /** Tags on a line or turn, and the characters of one. */
  tags: 32,
  tagChars: 100,
  /** One instance (LongMemEval) or sample (LoCoMo) of a memory benchmark file, in bytes. */
  recordBytes: 64 * 1024 * 1024,
  /** turn_gap_ms: an hour at most. */
  turnGapMs: 3_600_000,
} as const;

/** A model name, as lines and schedules may give it: printable ASCII without spaces, bounded. */
export const modelNameSchema = z.string().regex(new RegExp(`^[\\x21-\\x7e]{1,${LIMITS.modelChars}}$`), {
  message: `expected a model name: 1-${LIMITS.modelChars} printable characters, no spaces`,
});

export const MIB = 1024 * 1024;

/** "2 MiB", "3.07 MiB" from a mebibyte up, else bytes. */
export const formatBytes = (n: number) =>
  n < MIB ? `${n} bytes` : n % MIB === 0 ? `${n / MIB} MiB` : `${(n / MIB).toFixed(2)} MiB`;

/**
 * True when JSON text nests objects/arrays deeper than `max` (brackets inside strings do not count). One pass over
 * the text, no recursion: checked before JSON.parse, so that no later JSON.stringify can overflow the stack.
 */
export function nestedDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i += 1;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth -= 1;
  }
  return false;
}

export type JsonLine = { ok: true; value: Record<string, unknown> } | { ok: false; message: string };

/** A raw line as a JSON object, or why it cannot be one (too deep, not JSON, not an object); the size is checked while reading. */
export function parseJsonLine(text: string): JsonLine {
  if (nestedDeeperThan(text, LIMITS.depth))
    return {
      ok: false,
      message: `nested deeper than ${LIMITS.depth} levels (JSON objects and arrays); flatten the line`,
    };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, message: `invalid JSON (${(err as Error).message}); each line must be one JSON object` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ok: false, message: 'expected a JSON object on this line' };
  return { ok: true, value: value as Record<string, unknown> };
}
