import { type BoundedLine, readBoundedLines } from './bounded-lines.js';
import { formatBytes, LIMITS } from './input-limits.js';

/**
 * The records of an input, whatever its shape: the lines of a JSONL file, or the items of a file that is one JSON
 * array (a memory benchmark: LongMemEval, LoCoMo), told apart by its first character. An array is read as a stream,
 * one item at a time (LongMemEval_S is ~265 MB): each item comes as compact JSON text (the whitespace between tokens
 * dropped, so it is one line), numbered from 1, and one over `maxItemBytes` is skipped to its end and reported. One
 * pass over the bytes, linear in the input.
 */
export async function* readInputRecords(
  input: AsyncIterable<Buffer | string>,
  maxItemBytes: number = LIMITS.recordBytes,
): AsyncGenerator<BoundedLine> {
  const chunks = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  const held: Buffer[] = [];
  let first: number | undefined;
  while (first === undefined) {
    const next = await chunks.next();
    if (next.done) break;
    const buf = typeof next.value === 'string' ? Buffer.from(next.value, 'utf8') : next.value;
    held.push(buf);
    first = buf.find((b) => !WHITESPACE.has(b));
  }
  async function* all(): AsyncGenerator<Buffer> {
    yield* held;
    for (let next = await chunks.next(); !next.done; next = await chunks.next())
      yield typeof next.value === 'string' ? Buffer.from(next.value, 'utf8') : next.value;
  }
  if (first === OPEN_ARRAY) yield* arrayItems(all(), maxItemBytes);
  else yield* readBoundedLines(all());
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const OPEN_ARRAY = 0x5b;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPENERS = new Set([0x7b, 0x5b]);
const CLOSERS = new Set([0x7d, 0x5d]);
const COMMA = 0x2c;
/** An item buffer's first size. */
const ITEM_BUFFER_BYTES = 64 * 1024;

/** The items of a top-level JSON array; the text between them (commas, whitespace) is not kept. */
async function* arrayItems(chunks: AsyncIterable<Buffer>, maxBytes: number): AsyncGenerator<BoundedLine> {
  let depth = 0;
  let inString = false;
  let escaped = false;
  let item = 0;
  // An item's bytes are copied into one buffer that grows as needed (never past maxBytes), not held as a view per
  // run of bytes between whitespace: pretty-printed JSON has as many runs as tokens.
  let held = Buffer.allocUnsafe(ITEM_BUFFER_BYTES);
  let size = 0;
  let skipped = 0;
  const keep = (part: Buffer) => {
    if (part.length === 0) return;
    if (skipped > 0 || size + part.length > maxBytes) {
      skipped += size + part.length;
      size = 0;
      return;
    }
    if (size + part.length > held.length) {
      const bigger = Buffer.allocUnsafe(Math.min(maxBytes, Math.max(held.length * 2, size + part.length)));
      held.copy(bigger, 0, 0, size);
      held = bigger;
    }
    part.copy(held, size);
    size += part.length;
  };
  const end = (): BoundedLine => {
    item += 1;
    const text = held.toString('utf8', 0, size);
    const total = skipped + size;
    size = 0;
    skipped = 0;
    // A large item's buffer is not kept for the next ones.
    if (held.length > ITEM_BUFFER_BYTES * 16) held = Buffer.allocUnsafe(ITEM_BUFFER_BYTES);
    return total > maxBytes
      ? {
          line: item,
          tooLong: `item ${item} of the JSON array is ${formatBytes(total)}; the limit is ${formatBytes(maxBytes)}`,
        }
      : { line: item, text };
  };
  let inItem = false;
  for await (const buf of chunks) {
    // Depth 1 is inside the array, between items; an item's bytes are kept in runs without the whitespace.
    let run = inItem ? 0 : -1;
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (b === BACKSLASH) escaped = true;
        else if (b === QUOTE) inString = false;
        continue;
      }
      if (WHITESPACE.has(b)) {
        if (inItem) keep(buf.subarray(run, i));
        run = inItem ? i + 1 : -1;
        continue;
      }
      const closes = CLOSERS.has(b);
      if (depth === 1 && (b === COMMA || closes)) {
        // The end of an item that is not an object or array (a bad item: the parser says so), or of the array.
        if (inItem) {
          keep(buf.subarray(run, i));
          inItem = false;
          yield end();
        }
        run = -1;
        if (b === COMMA) continue;
      }
      if (depth === 1 && !inItem && !closes) {
        inItem = true;
        run = i;
      }
      if (b === QUOTE) inString = true;
      else if (OPENERS.has(b)) depth += 1;
      else if (closes) {
        depth -= 1;
        if (depth === 1 && inItem) {
          keep(buf.subarray(run, i + 1));
          inItem = false;
          run = -1;
          yield end();
        }
        if (depth === 0) return;
      }
    }
    if (inItem) keep(buf.subarray(run));
  }
  if (size > 0 || skipped > 0) yield end();
}
