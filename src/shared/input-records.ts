import { setImmediate } from 'node:timers/promises';
import { readBoundedLines } from './bounded-lines.js';
import { formatBytes, RECORD_BOUNDS, type RecordKind, tooManyValues } from './input-limits.js';

/** One record of an input (a line, or an item of a JSON array), numbered from 1: its text, or why it was refused. */
export type InputRecord = { kind: RecordKind; line: number } & ({ text: string } | { refused: string });

/**
 * The records of an input, whatever its shape: the lines of a JSONL file, or the items of a file that is one JSON
 * array (a memory benchmark: LongMemEval, LoCoMo), told apart by its first character. An array is read as a stream,
 * one item at a time (LongMemEval_S is ~265 MB): each item comes as compact JSON text (the whitespace between tokens
 * dropped, so it is one line); one over the item bounds (RECORD_BOUNDS: bytes, JSON values) is skipped to its end,
 * never held, and reported. One pass over the bytes, linear in the input; after each chunk it gives the event loop a
 * turn (an upload arriving faster than it is read would otherwise hold it until its last byte: other requests wait).
 */
export async function* readInputRecords(input: AsyncIterable<Buffer | string>): AsyncGenerator<InputRecord> {
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
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
      yield typeof next.value === 'string' ? Buffer.from(next.value, 'utf8') : next.value;
      await setImmediate();
    }
  }
  if (first === OPEN_ARRAY) {
    yield* arrayItems(all());
    return;
  }
  for await (const l of readBoundedLines(all(), RECORD_BOUNDS.line.bytes))
    yield 'tooLong' in l ? { kind: 'line', line: l.line, refused: l.tooLong } : { kind: 'line', ...l };
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const OPEN_ARRAY = 0x5b;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** What a byte is to the scanner outside strings, by a table (this loop sees every byte of a 265 MB file). */
const OTHER = 0;
const BLANK = 1;
const OPENER = 2;
const CLOSER = 3;
const COMMA = 4;
const STRING = 5;
const CLASS = new Uint8Array(256);
for (const b of WHITESPACE) CLASS[b] = BLANK;
CLASS[0x7b] = CLASS[0x5b] = OPENER;
CLASS[0x7d] = CLASS[0x5d] = CLOSER;
CLASS[0x2c] = COMMA;
CLASS[QUOTE] = STRING;
const { bytes: MAX_BYTES, values: MAX_VALUES } = RECORD_BOUNDS.item;
/** An item buffer's first size. */
const ITEM_BUFFER_BYTES = 64 * 1024;

/**
 * The items of a top-level JSON array, chunk by chunk; the text between them (commas, whitespace) is not kept. A plain
 * method scans each chunk (the hot loop: every byte of a 265 MB file), and hands back the items that ended in it.
 */
class ArrayItems {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private inItem = false;
  private item = 0;
  // An item's bytes are copied into one buffer that grows as needed (never past the bound), not held as a view per
  // run of bytes between whitespace: pretty-printed JSON has as many runs as tokens.
  private held = Buffer.allocUnsafe(ITEM_BUFFER_BYTES);
  private size = 0;
  private skipped = 0;
  // The item's JSON values so far; past the bound, the rest of it is skipped like an item too large.
  private values = 0;
  /** The array has ended: nothing after it is read. */
  done = false;

  private keep(part: Buffer): void {
    if (part.length === 0) return;
    if (this.skipped > 0 || this.values > MAX_VALUES || this.size + part.length > MAX_BYTES) {
      this.skipped += this.size + part.length;
      this.size = 0;
      return;
    }
    if (this.size + part.length > this.held.length) {
      const bigger = Buffer.allocUnsafe(Math.min(MAX_BYTES, Math.max(this.held.length * 2, this.size + part.length)));
      this.held.copy(bigger, 0, 0, this.size);
      this.held = bigger;
    }
    part.copy(this.held, this.size);
    this.size += part.length;
  }

  /** The item that ends here: its text, or why it is refused. */
  end(): InputRecord {
    this.item += 1;
    const { item, values } = this;
    const total = this.skipped + this.size;
    const refused =
      values > MAX_VALUES
        ? `item ${tooManyValues('item')}`
        : total > MAX_BYTES
          ? `item is ${formatBytes(total)}; the limit is ${formatBytes(MAX_BYTES)}: split the instance or shrink its sessions`
          : undefined;
    const text = refused ? '' : this.held.toString('utf8', 0, this.size);
    this.size = 0;
    this.skipped = 0;
    this.values = 0;
    // A large item's buffer is not kept for the next ones.
    if (this.held.length > ITEM_BUFFER_BYTES * 16) this.held = Buffer.allocUnsafe(ITEM_BUFFER_BYTES);
    return refused ? { kind: 'item', line: item, refused } : { kind: 'item', line: item, text };
  }

  /** What remains when the input ends: an item cut short, if any. */
  rest(): InputRecord[] {
    return this.size > 0 || this.skipped > 0 ? [this.end()] : [];
  }

  /** Scans one chunk; returns the items that ended in it. Depth 1 is inside the array, between items. */
  scan(buf: Buffer): InputRecord[] {
    const ended: InputRecord[] = [];
    // An item's bytes are kept in runs without the whitespace.
    let run = this.inItem ? 0 : -1;
    for (let i = 0; i < buf.length; i++) {
      if (this.inString) {
        // To the string's closing quote at once.
        for (; i < buf.length; i++) {
          const b = buf[i]!;
          if (this.escaped) this.escaped = false;
          else if (b === BACKSLASH) this.escaped = true;
          else if (b === QUOTE) {
            this.inString = false;
            break;
          }
        }
        continue;
      }
      const c = CLASS[buf[i]!]!;
      // A byte of a number or a literal; at depth 1 outside an item, one that begins an item (a bad one).
      if (c === OTHER && (this.inItem || this.depth !== 1)) continue;
      if (c === BLANK) {
        if (this.inItem) this.keep(buf.subarray(run, i));
        run = this.inItem ? i + 1 : -1;
        continue;
      }
      const closes = c === CLOSER;
      if (this.inItem && this.depth > 1 && (c === COMMA || c === OPENER)) this.values += 1;
      if (this.depth === 1 && (c === COMMA || closes)) {
        // The end of an item that is not an object or array (a bad item: the parser says so), or of the array.
        if (this.inItem) {
          this.keep(buf.subarray(run, i));
          this.inItem = false;
          ended.push(this.end());
        }
        run = -1;
        if (c === COMMA) continue;
      }
      if (this.depth === 1 && !this.inItem && !closes) {
        this.inItem = true;
        run = i;
        // The item's own opening bracket counts, as the line's first does.
        if (c === OPENER) this.values += 1;
      }
      if (c === STRING) this.inString = true;
      else if (c === OPENER) this.depth += 1;
      else if (closes) {
        this.depth -= 1;
        if (this.depth === 1 && this.inItem) {
          this.keep(buf.subarray(run, i + 1));
          this.inItem = false;
          run = -1;
          ended.push(this.end());
        }
        if (this.depth === 0) {
          this.done = true;
          return ended;
        }
      }
    }
    if (this.inItem) this.keep(buf.subarray(run));
    return ended;
  }
}

async function* arrayItems(chunks: AsyncIterable<Buffer>): AsyncGenerator<InputRecord> {
  const items = new ArrayItems();
  for await (const buf of chunks) {
    yield* items.scan(buf);
    if (items.done) return;
  }
  yield* items.rest();
}
