import { unpackLua, type LuaPacked } from './lua-msgpack.js';
import { decodeResponse } from './response-codec.js';
import {
  FINISHED_RECORD_FIELDS,
  toStoredRequest,
  type AttemptEntry,
  type RequestFieldValues,
  type StoredRequest,
} from './request-record.js';

/**
 * A finished request as Redis keeps it: one string under `<request key>:done`, written by the scripts that finish a
 * request (the "finished-record" Lua prelude), which drop its hash and body in the same step. It is a MessagePack
 * array (cmsgpack): the version (1), the values of FINISHED_RECORD_FIELDS in order (false: none; whole numbers as
 * numbers; the attempt log as arrays of [at, status, code, ms]), the body (JSON text) and the response
 * (response-codec.ts, or false). One key instead of three, and no field names: about half the bytes in Redis.
 */
export const FINISHED_RECORD_VERSION = 1;

export function decodeFinishedRecord(id: string, packed: Buffer): StoredRequest | null {
  const record = unpackLua(packed);
  if (!Array.isArray(record) || record[0] !== FINISHED_RECORD_VERSION)
    throw new Error(`the finished record of ${id} is not one this chatq reads (version ${String(record)})`);
  const text = (v: unknown) => (Buffer.isBuffer(v) ? v.toString('utf8') : typeof v === 'number' ? String(v) : null);
  const n = FINISHED_RECORD_FIELDS.length;
  const fields: RequestFieldValues & { conv?: string | null } = Object.fromEntries(
    FINISHED_RECORD_FIELDS.map((name, i) => [name, text(record[i + 1])]),
  );
  const attempts = record[FINISHED_RECORD_FIELDS.indexOf('attempt_log') + 1];
  if (Array.isArray(attempts)) fields.attempt_log = JSON.stringify(attempts.map(attemptEntry));
  const seq = /-(\d+)$/.exec(id);
  fields.batch = seq ? id.slice(0, seq.index) : '';
  fields.seq = seq?.[1] ?? null;
  const response = record[n + 2];
  return toStoredRequest(id, fields, text(record[n + 1]), decodeResponse(Buffer.isBuffer(response) ? response : null));
}

function attemptEntry(packed: LuaPacked): AttemptEntry {
  const [at, status, code, ms] = packed as [number, number | false, Buffer, number];
  return { at, status: status === false ? null : status, code: code.toString('utf8'), ms };
}

/** The conversation a "full" history turn left for the next one (JSON text), from its finished record. */
export function finishedConversation(packed: Buffer): string | null {
  const record = unpackLua(packed);
  const conv = Array.isArray(record) ? record[FINISHED_RECORD_FIELDS.indexOf('conv') + 1] : null;
  return Buffer.isBuffer(conv) ? conv.toString('utf8') : null;
}
