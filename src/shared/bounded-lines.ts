import { formatBytes, LIMITS } from './input-limits.js';

export type BoundedLine = { line: number; text: string } | { line: number; tooLong: string };

const NEWLINE = 0x0a;

/**
 * The lines of a stream (1-based numbers, "\r\n" or "\n"), never holding more than `maxBytes` of one line in memory:
 * a longer line is skipped to its end and reported by its size, and the lines after it go on.
 */
export async function* readBoundedLines(
  input: AsyncIterable<Buffer | string>,
  maxBytes: number = LIMITS.lineBytes,
): AsyncGenerator<BoundedLine> {
  let pieces: Buffer[] = [];
  let held = 0;
  let skipped = 0;
  let line = 0;
  const end = (): BoundedLine => {
    line += 1;
    if (skipped > 0) {
      const size = skipped + held;
      pieces = [];
      held = 0;
      skipped = 0;
      return {
        line,
        tooLong: `line is ${formatBytes(size)}; the limit is ${formatBytes(maxBytes)}: split the conversation or shrink its content`,
      };
    }
    let text = Buffer.concat(pieces, held).toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    pieces = [];
    held = 0;
    return { line, text };
  };
  const add = (part: Buffer) => {
    if (skipped > 0 || held + part.length > maxBytes) {
      skipped += held + part.length;
      pieces = [];
      held = 0;
    } else if (part.length > 0) {
      pieces.push(part);
      held += part.length;
    }
  };
  for await (const chunk of input) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
    let start = 0;
    for (let nl = buf.indexOf(NEWLINE); nl !== -1; nl = buf.indexOf(NEWLINE, start)) {
      add(buf.subarray(start, nl));
      yield end();
      start = nl + 1;
    }
    add(buf.subarray(start));
  }
  if (held > 0 || skipped > 0) yield end();
}
