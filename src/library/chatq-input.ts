import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { ParseOptions } from '../producer/parse-input.js';
import { parseCompletionWindow, type CompletionWindow } from '../shared/completion-window.js';
import { unreadable } from '../shared/readable-file.js';
import { ChatqError } from './errors.js';
import type { ChatqInput, LineDefaults } from './types.js';

/**
 * Lines as objects, or a file path, as the readable stream an import reads. A path that cannot be read is a ChatqError
 * naming it, before anything is written.
 */
export function inputStream(input: ChatqInput): () => Readable {
  if (typeof input === 'string') {
    const why = unreadable(input);
    if (why) throw new ChatqError(`${input}: ${why}`);
    return () => createReadStream(input);
  }
  return () =>
    Readable.from(
      (async function* () {
        for await (const line of input as AsyncIterable<unknown>) yield `${JSON.stringify(line)}\n`;
      })(),
    );
}

export const sourceOf = (input: ChatqInput, name: string | undefined) =>
  typeof input === 'string' ? input : (name ?? 'lines');

/** A completion window ("24h", "90m"), read; a ChatqError when unreadable. */
export function windowOf(text: string | undefined): CompletionWindow | undefined {
  const window = text === undefined ? undefined : parseCompletionWindow(text);
  if (window && 'error' in window) throw new ChatqError(`completion window: ${window.error}`);
  return window;
}

/** How lines that name no model or user are read. */
export function lineDefaults(
  options: LineDefaults,
  defaultModel: string | undefined,
): Pick<ParseOptions, 'defaultModel' | 'defaultUser' | 'userSalt'> {
  const model = options.model ?? defaultModel;
  return {
    ...(model ? { defaultModel: model } : {}),
    ...(options.user ? { defaultUser: options.user } : {}),
    ...(options.userSalt ? { userSalt: options.userSalt } : {}),
  };
}
