/**
 * JSON text with its usual phrases each written as one control character, behind a two-byte mark (NUL and the
 * codec's own byte) that JSON text never starts with: JSON.stringify's text never holds a raw control character (it
 * escapes them), so the codes cannot clash with the text. No compressor to set up: a few µs a value. The phrases are
 * part of the stored format: a new list gets a new mark, and the old marks keep theirs.
 */
export interface PhraseCodec {
  /** The coded form of `json`, or undefined when it holds a raw control character (not JSON.stringify's text). */
  encode(json: string): string | undefined;
  /** Whether `stored` is this codec's (it starts with its mark). */
  marks(stored: string): boolean;
  /** The JSON text of a value this codec marks. */
  decode(stored: string): string;
}

/** At most 31 phrases (one per control character from U+0001); at a position, the first in their order that matches is coded. */
export function phraseCodec(markByte: number, phrases: readonly string[]): PhraseCodec {
  if (phrases.length > 31) throw new Error('a phrase codec has at most 31 phrases');
  const mark = `\u0000${String.fromCharCode(markByte)}`;
  const phrase = new RegExp(phrases.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  const code = new Map(phrases.map((p, i) => [p, String.fromCharCode(i + 1)]));
  const coded = /[\u0001-\u001f]/g;
  return {
    encode: (json) => (/[\u0000-\u001f]/.test(json) ? undefined : mark + json.replace(phrase, (p) => code.get(p)!)),
    marks: (stored) => stored.startsWith(mark),
    decode: (stored) => stored.slice(2).replace(coded, (c) => phrases[c.charCodeAt(0) - 1]!),
  };
}
