import { z } from 'zod';
/**
 * Bounds on everything a user hands chatq (docs/behaviour.md, "Limits and safety"). Each is checked at parse time; a line
 * over one is a bad line with its reason.
 */
export const LIMITS = {
  /** One input line, in bytes (a base64 image inside a line counts). */
  lineBytes: 2 * 1024 * 1024,
  /**
   * JSON values in one line (array elements and object members, counted as commas and brackets): JSON.parse makes an
   * object of each, on the event loop, so a line of a million empty arrays would hold it for half a second.
   */
  lineValues: 100_000,
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
  /**
   * One item of a JSON array (a memory benchmark's instance or sample), in bytes and in JSON values: a LongMemEval_M
   * instance (500 sessions) is ~6 MB and ~40k values.
   */
  itemBytes: 16 * 1024 * 1024,
  itemValues: 200_000,
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

/** What an input's records are: the lines of a JSONL file, or the items of a JSON array (a memory benchmark). */
export type RecordKind = 'line' | 'item';

/** The bounds of one record, by kind: the same at upload, estimate and import. */
export const RECORD_BOUNDS: Record<RecordKind, { bytes: number; values: number }> = {
  line: { bytes: LIMITS.lineBytes, values: LIMITS.lineValues },
  item: { bytes: LIMITS.itemBytes, values: LIMITS.itemValues },
};

/** How JSON text's values count toward RECORD_BOUNDS: each comma and opening bracket outside strings. */
export const countsAsValue = (c: number) => c === 0x2c || c === 0x7b || c === 0x5b;

/** Why a record of `kind` is refused for holding too many values. */
export const tooManyValues = (kind: RecordKind) =>
  `holds more than ${RECORD_BOUNDS[kind].values} JSON values (array elements and object members); the limit is ${RECORD_BOUNDS[kind].values}`;

/**
 * Why JSON text is too deep (objects/arrays nested past LIMITS.depth) or holds too many values for a record of
 * `kind`, or undefined. One pass over the text, no recursion: checked before JSON.parse, so that no later
 * JSON.stringify can overflow the stack and no parse makes more objects than the bound.
 */
function shapeProblem(text: string, kind: RecordKind): string | undefined {
  let depth = 0;
  let values = 0;
  let inString = false;
  const most = RECORD_BOUNDS[kind].values;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i += 1;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (countsAsValue(c) && ++values > most) return `${kind} ${tooManyValues(kind)}`;
    if (c === 0x7b || c === 0x5b) {
      if (++depth > LIMITS.depth)
        return `nested deeper than ${LIMITS.depth} levels (JSON objects and arrays); flatten the ${kind}`;
    } else if (c === 0x7d || c === 0x5d) depth -= 1;
  }
  return undefined;
}

export type JsonLine = { ok: true; value: Record<string, unknown> } | { ok: false; message: string };

/**
 * A record's text as a JSON object, or why it cannot be one (too deep, too many values, not JSON, not an object); its
 * size is checked while reading.
 */
export function parseJsonLine(text: string, kind: RecordKind = 'line'): JsonLine {
  const problem = shapeProblem(text, kind);
  if (problem) return { ok: false, message: problem };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      message: `invalid JSON (${(err as Error).message}); ${kind === 'line' ? 'each line must be one JSON object' : 'each item of the array must be one JSON object'}`,
    };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ok: false, message: `expected a JSON object as this ${kind}` };
  return { ok: true, value: value as Record<string, unknown> };
}
