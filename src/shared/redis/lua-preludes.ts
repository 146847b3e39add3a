import { DEFAULT_PROJECT, redisKeys, SCRIPT_KEY_BUILDERS } from '../keys.js';
import {
  ATTEMPT_LOG_MOST,
  FINISHED_RECORD_FIELDS,
  FINISHED_STATUSES,
  NUMERIC_REQUEST_FIELDS,
} from '../request-record.js';
import { BATCH_FINAL_STATUS } from '../batch-record.js';
import { FINISHED_RECORD_VERSION } from '../finished-record.js';

/** The Lua preludes scripts include ("--- @include keys"), generated from the TypeScript definitions they mirror. */

/**
 * The Lua prelude a script gets with "--- @include keys": one builder per key of SCRIPT_KEY_BUILDERS, generated from
 * redisKeys itself, e.g. `KEY.request(prefix, id)`. The layout lives in keys.ts alone; a key that a project scopes
 * gets both of its shapes (the default project's, and any other's).
 */
export function keysPrelude(): string {
  // The prefix and each parameter are passed in as a control character, found again in the key built.
  const PREFIX = '\u0001';
  const marker = (i: number) => String.fromCharCode(2 + i);
  const isParam = (part: string) => part.length === 1 && part > PREFIX && part <= marker(8);
  const keys = redisKeys(PREFIX);
  const lua = (text: string) => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const builders = Object.entries(SCRIPT_KEY_BUILDERS).map(([name, params]) => {
    const build = keys[name as keyof typeof SCRIPT_KEY_BUILDERS] as (...args: string[]) => string;
    const expression = (args: string[]) =>
      build(...args)
        .split(/([\u0001-\u000a])/)
        .filter(Boolean)
        .map((part) => (part === PREFIX ? 'prefix' : isParam(part) ? params[part.charCodeAt(0) - 2]! : lua(part)))
        .join(' .. ');
    const own = params.map((_, i) => marker(i));
    const project = params.indexOf('project' as never);
    const body =
      project < 0
        ? `return ${expression(own)}`
        : `if project == ${lua(DEFAULT_PROJECT)} then return ${expression(own.map((m, i) => (i === project ? DEFAULT_PROJECT : m)))} end return ${expression(own)}`;
    return `function KEY.${name}(${['prefix', ...params].join(', ')}) ${body} end`;
  });
  return ['local KEY = {}', ...builders].join('\n');
}

/** Events kept waiting for the webhook dispatcher at the most (older ones are dropped: the list is bounded). */
export const MAX_PENDING_EVENTS = 10_000;

/**
 * `batchEvent(list, batchKey, batchId, status, now)`: records that a batch ended ("batch.completed", "batch.failed", "batch.expired",
 * "batch.cancelled"), in the same script as the transition (FINAL_STATUS: the status a batch ends in, by the one it had), for the webhook dispatcher; and "eval.failed" when a
 * completed batch with a min_pass (a scheduled evaluation) passed fewer of its graded requests. A part of a sharded
 * batch records "part.ended" instead (the dispatcher ends the batch once every part has: sharded-batch.ts).
 */
const eventsPrelude = () => `${statusesPrelude()}
local function batchEvent(list, batchKey, batchId, status, now)
  -- A part of a sharded batch (see keys.ts) tells the dispatcher instead, which ends the batch when all its parts have.
  if redis.call('HEXISTS', batchKey, 'parent') == 1 then
    redis.call('RPUSH', list, cjson.encode({ type = 'part.ended', batch = batchId, at = tonumber(now) }))
    return
  end
  redis.call('RPUSH', list, cjson.encode({ type = 'batch.' .. status, batch = batchId, at = tonumber(now) }))
  local minPass, passed, failed = unpack(redis.call('HMGET', batchKey, 'min_pass', 'eval_pass', 'eval_fail'))
  local graded = (tonumber(passed) or 0) + (tonumber(failed) or 0)
  if status == 'completed' and tonumber(minPass) and graded > 0 and (tonumber(passed) or 0) / graded < tonumber(minPass) then
    redis.call('RPUSH', list, cjson.encode({ type = 'eval.failed', batch = batchId, at = tonumber(now), pass_rate = (tonumber(passed) or 0) / graded, min_pass = tonumber(minPass) }))
  end
  redis.call('LTRIM', list, -${MAX_PENDING_EVENTS}, -1)
end`;

/**
 * "--- @include statuses" (and every script with events): the status sets that request-record.ts defines, as Lua
 * tables: FINISHED_REQUEST[status] (a request's result is written), FINAL_STATUS[status] (how a batch at work ends when
 * its last request is done), ENDS_WITH_REQUESTS[status] (one of those ends).
 */
function statusesPrelude(): string {
  const set = (values: readonly string[]) => `{ ${values.map((v) => `${v} = true`).join(', ')} }`;
  return [
    `local FINISHED_REQUEST = ${set(FINISHED_STATUSES)}`,
    `local FINAL_STATUS = { ${Object.entries(BATCH_FINAL_STATUS)
      .map(([from, to]) => `${from} = '${to}'`)
      .join(', ')} }`,
    `local ENDS_WITH_REQUESTS = ${set(Object.values(BATCH_FINAL_STATUS))}`,
  ].join('\n');
}

/**
 * "--- @include attempt-log" (and "finished-record"): a request's attempt log, bounded: its first entry and its
 * latest ones, ATTEMPT_LOG_MOST in all (a request that met thousands of 429s keeps a bounded log; the first entry says
 * when its attempts began; the count of calls is the request's "attempts").
 * - appendAttempts(log, entries): the hash's log (JSON array text, or nil) with a run's entries (JSON objects,
 *   comma-separated, no brackets) added, as JSON text (requeue-request.lua);
 * - attemptsOf(log, entries): the hash's log and a run's entries (arrays of [at, status or false, code, ms]; nil:
 *   none) as a finished record keeps them, arrays of [at, status, code, ms]; false when there are none.
 */
const attemptLogPrelude = () => `local ATTEMPT_LOG_MOST = ${ATTEMPT_LOG_MOST}
local function boundedAttempts(all)
  if #all <= ATTEMPT_LOG_MOST then return all end
  local kept = { all[1] }
  for i = #all - ATTEMPT_LOG_MOST + 2, #all do kept[#kept + 1] = all[i] end
  return kept
end
local function appendAttempts(log, entries)
  local text = (log and (string.sub(log, 1, -2) .. ',') or '[') .. entries .. ']'
  local _, count = string.gsub(text, '{"at":', '')
  if count <= ATTEMPT_LOG_MOST then return text end
  return cjson.encode(boundedAttempts(cjson.decode(text)))
end
local function attemptsOf(log, entries)
  if not log then
    if not entries or #entries == 0 then return false end
    return boundedAttempts(entries)
  end
  local all = {}
  for i, e in ipairs(cjson.decode(log)) do all[i] = { e.at, e.status ~= cjson.null and e.status or false, e.code, e.ms } end
  for _, e in ipairs(entries or {}) do all[#all + 1] = e end
  return boundedAttempts(all)
end`;

/**
 * "--- @include finished-record" (after "keys"): a request as one record (finished-record.ts: the version, then the
 * values of FINISHED_RECORD_FIELDS in order, false for none; whole numbers as numbers, the attempt log as arrays of
 * [at, status, code, ms]; then the body), read from its hash in that order, with no table by name. It is stored
 * framed: its packed length (4 bytes), the packed record, then the response as it is stored (bytes: cmsgpack has no
 * type for them):
 * - AT.<field>: a field's place in a record, written in as its number when the script is loaded (finishedRecordPlaces:
 *   an unknown field is an error then); AT[name], the same by a name found at run time (a table, made only in a
 *   script that looks a place up so);
 * - requestRecord(key): the hash's values as a record (text as the hash holds it) and the request's project, or nil
 *   when it is gone;
 * - writeRecord(prefix, id, record, ttl, response, entries): writes `record` (requestRecord's, with the finish's
 *   changes) as the finished record, with the run's attempt `entries` added to its log (attemptsOf), the body beside
 *   the hash and `response` (the stored form, or false), expiring after `ttl` seconds; deletes the hash and the body;
 * - framed(record, response): the stored form of a record and a response (or false);
 * - unframed(stored): a stored record and its response ("" when none);
 * - finishedRecord(prefix, id): a finished record and its response, or nil when there is none.
 */
const finishedRecordPrelude = () => `${attemptLogPrelude()}
${PLACES_TABLE}
local NUMERIC_AT = { ${NUMERIC_REQUEST_FIELDS.filter((f) => FINISHED_RECORD_FIELDS.includes(f))
  .map((f) => FINISHED_RECORD_FIELDS.indexOf(f) + 2)
  .join(', ')} }
local function framed(record, response)
  local packed = cmsgpack.pack(record)
  return struct.pack('>I4', #packed) .. packed .. (response or '')
end
local function unframed(stored)
  local n = struct.unpack('>I4', stored)
  return cmsgpack.unpack(string.sub(stored, 5, 4 + n)), string.sub(stored, 5 + n)
end
local function requestRecord(key)
  local record = redis.call('HMGET', key, 'project', ${FINISHED_RECORD_FIELDS.map((f) => `'${f}'`).join(', ')})
  if not record[AT.status] then return nil end
  local project = record[1] or 'default'
  record[1] = ${FINISHED_RECORD_VERSION}
  return record, project
end
local function writeRecord(prefix, id, record, ttl, response, entries)
  for _, i in ipairs(NUMERIC_AT) do
    local v = record[i]
    if v then record[i] = tonumber(v) or v end
  end
  record[AT.attempt_log] = attemptsOf(record[AT.attempt_log], entries)
  local bodyKey = KEY.requestBody(prefix, id)
  record[${FINISHED_RECORD_FIELDS.length + 2}] = redis.call('GET', bodyKey) or false
  redis.call('SET', KEY.requestDone(prefix, id), framed(record, response), 'EX', ttl)
  redis.call('DEL', KEY.request(prefix, id), bodyKey)
end
local function finishedRecord(prefix, id)
  local stored = redis.call('GET', KEY.requestDone(prefix, id))
  if not stored then return nil end
  return unframed(stored)
end`;

/** A finished record's place of each field (after the version). */
const PLACE = new Map(FINISHED_RECORD_FIELDS.map((f, i) => [f, i + 2]));
const PLACES_TABLE = `local AT = { ${FINISHED_RECORD_FIELDS.map((f) => `${f} = ${PLACE.get(f)}`).join(', ')} }`;

/**
 * A loaded script's text with each `AT.<field>` written as the field's place (no table to build on every call), and
 * the AT table left out unless the script looks a place up by a name it finds at run time (`AT[name]`). A name that
 * is no field of the finished record is an error here, when the script is loaded, not a nil when it runs.
 */
export function finishedRecordPlaces(lua: string, script: string): string {
  const placed = lua.replace(/\bAT\.(\w+)/g, (_, field: string) => {
    const place = PLACE.get(field as (typeof FINISHED_RECORD_FIELDS)[number]);
    if (place === undefined) throw new Error(`${script}: AT.${field} is no field of the finished record`);
    return String(place);
  });
  return /\bAT\[/.test(placed) ? placed : placed.replace(`${PLACES_TABLE}\n`, '');
}

export const PRELUDES: Record<string, () => string> = {
  'attempt-log': attemptLogPrelude,
  'finished-record': finishedRecordPrelude,
  keys: keysPrelude,
  events: eventsPrelude,
  statuses: statusesPrelude,
};
