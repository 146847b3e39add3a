import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { phraseCodec } from './phrase-codec.js';

/**
 * How an upstream response is kept in Redis, behind a two-byte mark that JSON text never starts with:
 * - V2, a reply of the usual size: the usual phrases of chat.completion JSON (keys with their punctuation) each
 *   written as one control character (phrase-codec.ts). No compressor to set up: about a quarter of DEFLATE's CPU to
 *   write and half to read, for a few more bytes (measured: the simulator's 639-byte answer, 137 bytes in 4.9 µs
 *   against DEFLATE with a dictionary of its shape, 125 bytes in 15 µs; read back in 3.4 µs against 7).
 * - V1, a longer one: raw DEFLATE with a preset dictionary of the usual chat.completion JSON.
 * A short reply, or one neither form makes smaller, is kept as its JSON text, and read as it is. Phrases and dictionary are part of the stored format: a new
 * list gets a new mark, and the old marks keep theirs.
 */
const MARK_V1 = Buffer.from([0x00, 0x01]);
const PHRASES_V2 = [
  '","choices":[{"index":0,"message":{"role":"assistant","content":"',
  '","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"',
  ',"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}',
  '},"completion_tokens_details":{"reasoning_tokens":',
  ',"prompt_tokens_details":{"cached_tokens":',
  '","object":"chat.completion","created":',
  '},"service_tier":"default","system_fingerprint":"fp_',
  '},"logprobs":null,"finish_reason":"',
  '"}],"usage":{"prompt_tokens":',
  '}],"usage":{"prompt_tokens":',
  '"},"finish_reason":"',
  ',"completion_tokens":',
  ',"reasoning_content":"',
  ',"system_fingerprint":"',
  ',"service_tier":"',
  ',"total_tokens":',
  ',"audio_tokens":0',
  ',"refusal":null',
  '{"id":"chatcmpl-',
  ',"model":"',
  'gpt-4o-mini',
  '"finish_reason":"',
  '"content":"',
  'stop',
  '":null',
  '}}}',
  '},"',
  '","',
  '":"',
  '":{"',
  '":0',
];
const V2 = phraseCodec(0x02, PHRASES_V2);
/** A V2 text at most this long is kept as it is; past it, the reply has text enough for DEFLATE to be worth its CPU. */
const PHRASE_CODED_MAX_BYTES = 384;
/** Longer JSON is not phrase-coded: the usual phrases save ~300 bytes of a reply, so it would stay over the bound. */
const PHRASE_CODED_MAX_SOURCE = 2_048;
const DICTIONARY_V1 = Buffer.from(
  [
    '"service_tier":"default","system_fingerprint":"fp_"',
    '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}',
    '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0}',
    '"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":',
    ',"completion_tokens":',
    ',"total_tokens":',
    '"message":{"role":"assistant","content":"',
    '","refusal":null,"annotations":[],"reasoning_content":"',
    '{"id":"chatcmpl-","object":"chat.completion","created":17,"model":"gpt-4o-mini","choices":[{"index":0,',
  ].join(''),
);
/** Below this, compressing saves too little to be worth a read's inflate. */
const COMPRESS_FROM_BYTES = 128;

/** The stored form of a response's JSON text: phrase-coded or compressed when that is smaller. */
export function encodeResponse(json: string): string | Buffer {
  if (json.length < COMPRESS_FROM_BYTES) return json;
  // A long reply is compressed without a coding pass first (its text, which no phrase covers, keeps it over the bound).
  const coded = json.length <= PHRASE_CODED_MAX_SOURCE ? V2.encode(json) : undefined;
  if (coded !== undefined && Buffer.byteLength(coded) <= PHRASE_CODED_MAX_BYTES) return coded;
  const raw = Buffer.from(json, 'utf8');
  // A 4 KiB window, less state and the fastest level: half the CPU per response of zlib's defaults for a few bytes
  // more (a 629-byte completion: 188 bytes, against 171 at the default level); inflate reads any level as usual.
  const packed = deflateRawSync(raw, { dictionary: DICTIONARY_V1, windowBits: 12, memLevel: 5, level: 1 });
  return packed.length + MARK_V1.length < raw.length ? Buffer.concat([MARK_V1, packed]) : json;
}

/** A stored response back as JSON text (null when none was stored). */
export function decodeResponse(stored: Buffer | null): string | null {
  if (stored === null) return null;
  if (stored.length >= 2 && stored[0] === MARK_V1[0] && stored[1] === MARK_V1[1])
    return inflateRawSync(stored.subarray(2), { dictionary: DICTIONARY_V1 }).toString('utf8');
  const text = stored.toString('utf8');
  return V2.marks(text) ? V2.decode(text) : text;
}
