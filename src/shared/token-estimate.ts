import { createRequire } from 'node:module';
import type * as GptTokenizer from 'gpt-tokenizer';

let loaded: typeof GptTokenizer | undefined;

/**
 * The o200k tokenizer (gpt-tokenizer), loaded on first use: its tables take ~20 MB of heap (~50 MB of the process's
 * memory), which a worker with no TPM limit and no budget never counts with. Every use goes through here, so that a
 * process holds one copy (its CommonJS build, which loads synchronously).
 */
export function tokenizer(): typeof GptTokenizer {
  loaded ??= createRequire(import.meta.url)('gpt-tokenizer') as typeof GptTokenizer;
  return loaded;
}

/**
 * Token counts of user text in linear time. The tokenizer is quadratic on a long run without spaces (100k
 * characters take ~12 s), so such text, and any text past TOKENIZER_MAX_CHARS, is counted by a proven upper bound
 * instead: its UTF-8 length (every BPE token covers at least one byte).
 */
const TOKENIZER_MAX_CHARS = 32_000;
const RUN_MAX_CHARS = 256;
/** An image part, whatever its size in the body (a high-detail image is at most ~1,100 tokens for GPT-4o). */
export const IMAGE_TOKENS = 1_600;

function hasLongRun(text: string): boolean {
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    run = c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d ? 0 : run + 1;
    if (run > RUN_MAX_CHARS) return true;
  }
  return false;
}

export function textTokens(text: string): number {
  if (text.length > TOKENIZER_MAX_CHARS || hasLongRun(text)) return Buffer.byteLength(text, 'utf8');
  return tokenizer().countTokens(text);
}

/** A message's content: text, or parts (text counted, images at a fixed estimate, anything else as its JSON text). */
export function contentTokens(content: unknown): number {
  if (typeof content === 'string') return textTokens(content);
  if (!Array.isArray(content))
    return content === undefined || content === null ? 0 : textTokens(JSON.stringify(content));
  let sum = 0;
  for (const part of content as { type?: unknown; text?: unknown }[]) {
    if (part && typeof part.text === 'string') sum += textTokens(part.text);
    else if (part && (part.type === 'image_url' || part.type === 'input_image')) sum += IMAGE_TOKENS;
    else sum += textTokens(JSON.stringify(part ?? ''));
  }
  return sum;
}
