import { phraseCodec } from './phrase-codec.js';

/**
 * How a request's body is kept in Redis (its `:body` key while it waits, then its finished record): its JSON text
 * with the usual phrases of a chat request coded (phrase-codec.ts, mark 0x03), when that is shorter; else as it is.
 * A body is a few hundred bytes of mostly structure for short chats ({"model":...,"messages":[{"role":"user",
 * "content":"...): most of that goes to a byte or two. Nothing but chatq's TypeScript reads a body (the scripts keep
 * it as they are given it).
 */
const BODY = phraseCodec(0x03, [
  '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"',
  '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"',
  '","messages":[{"role":"system","content":"',
  '","messages":[{"role":"user","content":"',
  '"},{"role":"assistant","content":"',
  '"},{"role":"user","content":"',
  '"},{"role":"system","content":"',
  '"content":[{"type":"text","text":"',
  '{"type":"image_url","image_url":{"url":"',
  '{"type":"text","text":"',
  '{"role":"assistant","content":"',
  '{"role":"user","content":"',
  '"}],"max_completion_tokens":',
  ',"response_format":{"type":"json_object"}',
  '"}],"max_tokens":',
  '"}],"temperature":',
  ',"max_completion_tokens":',
  ',"max_tokens":',
  ',"temperature":',
  ',"stream":false',
  ',"top_p":',
  '{"model":"',
  '","content":"',
  '","name":"',
  'gpt-4o-mini',
  '"role":"',
  '"}]}',
  '"},{"',
  '":"',
  '","',
  '"}',
]);

/** The stored form of a body's JSON text. */
export function encodeBody(json: string): string {
  const coded = BODY.encode(json);
  return coded !== undefined && coded.length < json.length ? coded : json;
}

/** A stored body back as JSON text. */
export const decodeBody = (stored: string): string => (BODY.marks(stored) ? BODY.decode(stored) : stored);
