import { DEFAULT_PROJECT, redisKeys, SCRIPT_KEY_BUILDERS } from '../keys.js';
import {
  BATCH_FINAL_STATUS,
  FINISHED_RECORD_FIELDS,
  FINISHED_STATUSES,
  NUMERIC_REQUEST_FIELDS,
} from '../request-record.js';
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
 * "--- @include finished-record" (after "keys"): a request's hash as a table, and the step that ends it as one record
 * (finished-record.ts; the field order is FINISHED_RECORD_FIELDS; whole numbers as numbers, the attempt log as
 * arrays of [at, status, code, ms]):
 * - requestFields(key): the hash's fields by name, or nil when it is gone;
 * - writeFinished(prefix, id, fields, ttl, response): writes the record of `fields` (the hash's, with the finish's
 *   changes), the body beside the hash and `response` (the stored form, or false), expiring after `ttl` seconds, and
 *   deletes the hash and the body;
 * - finishedFields(prefix, id): a finished record's text fields by name (its conversation, its userid), or nil when
 *   there is none;
 * - FINISHED_FIELD_INDEX[name]: a field's place in FINISHED_RECORD_FIELDS (the record holds it at that place + 1).
 */
const finishedRecordPrelude =
  () => `local FINISHED_RECORD_FIELDS = { ${FINISHED_RECORD_FIELDS.map((f) => `'${f}'`).join(', ')} }
local NUMERIC_FIELD = { ${NUMERIC_REQUEST_FIELDS.map((f) => `${f} = true`).join(', ')} }
local FINISHED_FIELD_INDEX = { ${FINISHED_RECORD_FIELDS.map((f, i) => `${f} = ${i + 1}`).join(', ')} }
local function requestFields(key)
  local h = redis.call('HGETALL', key)
  if #h == 0 then return nil end
  local f = {}
  for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
  return f
end
local function packedAttempts(text)
  local entries = {}
  for i, e in ipairs(cjson.decode(text)) do
    entries[i] = { e.at, e.status ~= cjson.null and e.status or false, e.code, e.ms }
  end
  return entries
end
local function writeFinished(prefix, id, fields, ttl, response)
  local bodyKey = KEY.requestBody(prefix, id)
  local record = { ${FINISHED_RECORD_VERSION} }
  for i, name in ipairs(FINISHED_RECORD_FIELDS) do
    local value = fields[name]
    if value and NUMERIC_FIELD[name] then value = tonumber(value) or value end
    if value and name == 'attempt_log' then value = packedAttempts(value) end
    record[i + 1] = value or false
  end
  record[#FINISHED_RECORD_FIELDS + 2] = redis.call('GET', bodyKey) or false
  record[#FINISHED_RECORD_FIELDS + 3] = response or false
  redis.call('SET', KEY.requestDone(prefix, id), cmsgpack.pack(record), 'EX', ttl)
  redis.call('DEL', KEY.request(prefix, id), bodyKey)
end
local function finishedFields(prefix, id)
  local packed = redis.call('GET', KEY.requestDone(prefix, id))
  if not packed then return nil end
  local record, f = cmsgpack.unpack(packed), {}
  for i, name in ipairs(FINISHED_RECORD_FIELDS) do
    if type(record[i + 1]) == 'string' then f[name] = record[i + 1] end
  end
  return f
end`;

export const PRELUDES: Record<string, () => string> = {
  'finished-record': finishedRecordPrelude,
  keys: keysPrelude,
  events: eventsPrelude,
  statuses: statusesPrelude,
};
