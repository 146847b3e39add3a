import { msgpack } from './msgpack.js';
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
 * request (the "finished-record" Lua prelude), which drop its hash and body in the same step. It is framed: the
 * length of the packed record (4 bytes, big-endian), the record, a MessagePack array (cmsgpack) of the version, the
 * values of FINISHED_RECORD_FIELDS in order (false: none; whole numbers as numbers; the attempt log as arrays of [at,
 * status, code, ms]) and the body (JSON text), then the response as stored (response-codec.ts; nothing when none).
 * One key instead of three, and no field names: about half the bytes in Redis.
 */
export const FINISHED_RECORD_VERSION = 2;

/** A stored record's fields (by place) and its stored response (null when none). */
function unframe(id: string, stored: Buffer): { record: unknown[]; response: Buffer | null } {
  const length = stored.length >= 4 ? stored.readUInt32BE(0) : -1;
  if (length < 0 || 4 + length > stored.length)
    throw new Error(`the finished record of ${id} is not one this chatq reads (its frame is cut short)`);
  const record = msgpack.unpack(stored.subarray(4, 4 + length)) as unknown;
  const version = Array.isArray(record) ? (record[0] as unknown) : undefined;
  if (!Array.isArray(record) || version !== FINISHED_RECORD_VERSION)
    throw new Error(`the finished record of ${id} is not one this chatq reads (version ${String(version)})`);
  return { record, response: stored.length > 4 + length ? stored.subarray(4 + length) : null };
}

const text = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null);

export function decodeFinishedRecord(id: string, stored: Buffer): StoredRequest | null {
  const { record, response } = unframe(id, stored);
  const fields: RequestFieldValues = Object.fromEntries(
    FINISHED_RECORD_FIELDS.map((name, i) => [name, text(record[i + 1])]),
  );
  const attempts = record[FINISHED_RECORD_FIELDS.indexOf('attempt_log') + 1];
  if (Array.isArray(attempts)) fields.attempt_log = JSON.stringify(attempts.map(attemptEntry));
  const seq = /-(\d+)$/.exec(id);
  fields.batch = seq ? id.slice(0, seq.index) : '';
  fields.seq = seq?.[1] ?? null;
  return toStoredRequest(id, fields, text(record[FINISHED_RECORD_FIELDS.length + 1]), decodeResponse(response));
}

function attemptEntry(packed: unknown): AttemptEntry {
  const [at, status, code, ms] = packed as [number, number | false, string, number];
  return { at, status: status === false ? null : status, code, ms };
}

/** The conversation a "full" history turn left for the next one (JSON text), from its finished record. */
export function finishedConversation(id: string, stored: Buffer): string | null {
  return text(unframe(id, stored).record[FINISHED_RECORD_FIELDS.indexOf('conv') + 1]);
}
