import { deflateRawSync, inflateRawSync } from 'node:zlib';

/**
 * How an upstream response is kept in Redis: compressed (raw DEFLATE with a preset dictionary of the usual
 * chat.completion JSON, so even a short reply shrinks) behind a two-byte mark that JSON text never starts with.
 * Values from before (plain JSON text) read as they are. The dictionary is part of the stored format: a new one
 * gets a new mark, and the old mark keeps its dictionary.
 */
const MARK_V1 = Buffer.from([0x00, 0x01]);
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

/** The stored form of a response's JSON text: compressed when that is smaller. */
export function encodeResponse(json: string): string | Buffer {
  const raw = Buffer.from(json, 'utf8');
  if (raw.length < COMPRESS_FROM_BYTES) return json;
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
  return stored.toString('utf8');
}
