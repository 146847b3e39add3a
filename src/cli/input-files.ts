import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { UsageError } from './cli-context.js';
import { unreadable } from '../shared/readable-file.js';

/**
 * Files named on the command line; a directory stands for its *.jsonl and *.json files (a JSON array: a memory
 * benchmark), in name order (directories named so are passed over). "-" is stdin. Every file is checked before anything is enqueued.
 */
export function expandInputs(inputs: string[]): string[] {
  const files: string[] = [];
  for (const input of inputs) {
    if (input === '-') {
      files.push(input);
      continue;
    }
    let isDir = false;
    try {
      isDir = statSync(input).isDirectory();
    } catch {
      throw new UsageError(`input not found: ${input}`);
    }
    const found = isDir
      ? readdirSync(input, { withFileTypes: true })
          .filter(
            (e) =>
              /\.jsonl?$/.test(e.name) && !e.isDirectory() && !(e.isSymbolicLink() && safeIsDir(join(input, e.name))),
          )
          .map((e) => join(input, e.name))
          .sort()
      : [input];
    if (found.length === 0) throw new UsageError(`no .jsonl or .json files in ${input}`);
    for (const f of found) {
      const why = unreadable(f, isDir);
      if (why) throw new UsageError(`${f}: ${why}`);
    }
    files.push(...found);
  }
  return files;
}

function safeIsDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function openInput(file: string): () => Readable {
  return () => (file === '-' ? process.stdin : createReadStream(file));
}
