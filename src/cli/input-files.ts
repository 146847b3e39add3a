import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { UsageError } from './cli-context.js';

/** Files named on the command line; a directory stands for its *.jsonl files, in name order. "-" is stdin. */
export function expandInputs(inputs: string[]): string[] {
  const files: string[] = [];
  for (const input of inputs) {
    if (input === '-') {
      files.push(input);
      continue;
    }
    let stat;
    try {
      stat = statSync(input);
    } catch {
      throw new UsageError(`input not found: ${input}`);
    }
    if (stat.isDirectory()) {
      const found = readdirSync(input).filter((f) => f.endsWith('.jsonl')).sort();
      if (found.length === 0) throw new UsageError(`no .jsonl files in ${input}`);
      files.push(...found.map((f) => join(input, f)));
    } else files.push(input);
  }
  return files;
}

export function openInput(file: string): () => Readable {
  return () => (file === '-' ? process.stdin : createReadStream(file, { encoding: 'utf8' }));
}
