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
/**
 * The most tokens one image may be billed, by model family (a high-detail image at its largest: 8 tiles, or 1,536
 * patches times the model's multiplier, as OpenAI's vision pricing gives them); other models: 1,600 (Claude's
 * ~1,600 for an image at its largest size; Gemini bills 258).
 */
const IMAGE_TOKENS: [RegExp, number][] = [
  [/^gpt-4o-mini/, 2_833 + 8 * 5_667],
  [/^gpt-4\.1-nano|^gpt-5-nano/, 3_779],
  [/^o4-mini/, 2_642],
  [/^gpt-4\.1-mini|^gpt-5-mini/, 2_489],
  [/^(gpt-4|gpt-5|o1|o3|chatgpt-4o)/, 85 + 8 * 170],
];
const DEFAULT_IMAGE_TOKENS = 1_600;

export function imageTokens(model: unknown): number {
  const name = typeof model === 'string' ? model.replace(/^.*\//, '') : '';
  return IMAGE_TOKENS.find(([family]) => family.test(name))?.[1] ?? DEFAULT_IMAGE_TOKENS;
}

function hasLongRun(text: string): boolean {
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    run = c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d ? 0 : run + 1;
    if (run > RUN_MAX_CHARS) return true;
  }
  return false;
}

/**
 * Text is text: a special token's spelling ("<|endoftext|>") in user data is counted as the characters it is, as
 * the upstream bills it (the tokenizer refuses such text by default).
 */
export const AS_TEXT = { disallowedSpecial: new Set<string>() };

export function textTokens(text: string): number {
  if (text.length > TOKENIZER_MAX_CHARS || hasLongRun(text)) return Buffer.byteLength(text, 'utf8');
  return tokenizer().countTokens(text, AS_TEXT);
}

/** Any JSON value as the tokens of its JSON text (a tool list, a schema, a tool call): linear, as textTokens. */
export function jsonTokens(value: unknown): number {
  return textTokens(JSON.stringify(value) ?? '');
}

/**
 * A message's content: text, or parts (text counted, an image at the most its model bills for one, audio and files by
 * the bytes of their JSON, which no audio or file token count exceeds, anything else as its JSON text).
 */
export function contentTokens(content: unknown, model?: unknown): number {
  if (typeof content === 'string') return textTokens(content);
  if (!Array.isArray(content)) return content === undefined || content === null ? 0 : jsonTokens(content);
  let sum = 0;
  for (const part of content as { type?: unknown; text?: unknown }[]) {
    if (part && typeof part.text === 'string') sum += textTokens(part.text);
    else if (part && (part.type === 'image_url' || part.type === 'input_image')) sum += imageTokens(model);
    else if (part && (part.type === 'input_audio' || part.type === 'file'))
      sum += Buffer.byteLength(JSON.stringify(part), 'utf8');
    else sum += jsonTokens(part ?? '');
  }
  return sum;
}
