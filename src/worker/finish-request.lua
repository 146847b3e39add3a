--[[
  Writes a request's final result, once: a request already finished is left alone (idempotent), so each
  request counts exactly once in the batch counters and usage aggregates, whatever was delivered twice.
  Moves the run's budget reservation into the batch's spent cost in the same step, so that no moment counts it
  twice or not at all. Then pops the request from its lane and returns the lane's next head, which the caller adds
  to BullMQ.
  KEYS: 1 request, 2 batch, 3 lane, 4 lane set, 5-8 usage by batch/user/model/day (the request's project),
        9-12 their indexes (sorted sets scored by latest write), 13 batch request list, 14 batch custom_id hash,
        15 batch error list, 16 cluster-wide metrics hash, 17 usage of the "other" model, 18 the user's request
        index in the project, 19 the batch's budget reservations
  ARGV: 1 id, 2 status (succeeded|failed), 3 now, 4 ttl (s), 5 key prefix, 6 fields (JSON object),
        7 attempt entries of this run (JSON array text without brackets, or ""), 8 upstream calls made in this run,
        9-12 usage index members (batch, userid, model, day),
        13 prompt, 14 completion, 15 total, 16 cached, 17 reasoning tokens, 18 cost in nano-USD ("" = unpriced),
        19 error code of a failure ("" on success), counted per batch as "error:<code>",
        20 latency bucket of the call ("" when no call answered), for the cluster-wide latency histogram,
        21 evaluation grade ("pass" | "fail" | "" when the request has no expectations),
        22 the response body (JSON text, kept as is, stored at <request key>:resp; "" when none)
  Model names past MAX_MODELS distinct ones are counted as "other", so no input can grow the key space without bound.
  Returns {'ok'|'duplicate'|'missing', next lane head or ''}.
]]
local MAX_MODELS = 200
-- Every number is checked before the first write: a bad one is an error that leaves nothing half done.
for _, i in ipairs({ 3, 4, 8, 13, 14, 15, 16, 17 }) do
  local v = tonumber(ARGV[i])
  if not v or v < 0 or v > 1e15 or v ~= math.floor(v) then error('chatq finish-request: argument ' .. i .. ' must be a whole number') end
end
if ARGV[18] ~= '' and not string.match(ARGV[18], '^%d+$') then error('chatq finish-request: cost must be whole nano-USD') end
if ARGV[2] ~= 'succeeded' and ARGV[2] ~= 'failed' then error('chatq finish-request: bad status') end
local fields = cjson.decode(ARGV[6])

local req, batch, lane = KEYS[1], KEYS[2], KEYS[3]
local id, status, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local current = redis.call('HGET', req, 'status')
if not current then return { 'missing', redis.call('LINDEX', lane, 0) or '' } end
if current == 'succeeded' or current == 'failed' or current == 'cancelled' or current == 'skipped' then
  redis.call('HDEL', KEYS[19], id)
  return { 'duplicate', redis.call('LINDEX', lane, 0) or '' }
end

for field, value in pairs(fields) do redis.call('HSET', req, field, value) end
redis.call('HSET', req, 'status', status, 'finished_at', now)
-- Like the body, the response lives beside the hash, which then stays compact.
if ARGV[22] ~= '' then redis.call('SET', req .. ':resp', ARGV[22], 'EX', ttl) end
if ARGV[7] ~= '' then
  local log = redis.call('HGET', req, 'attempt_log')
  redis.call('HSET', req, 'attempt_log', (log and (string.sub(log, 1, -2) .. ',') or '[') .. ARGV[7] .. ']')
end
if ARGV[8] ~= '0' then redis.call('HINCRBY', req, 'attempts', ARGV[8]) end
redis.call('EXPIRE', req, ttl)
redis.call('EXPIRE', req .. ':body', ttl)
-- A user's request index lives as long as their latest result.
redis.call('EXPIRE', KEYS[18], ttl)
redis.call('HDEL', KEYS[19], id)

redis.call('HINCRBY', batch, status, 1)
if ARGV[19] ~= '' then redis.call('HINCRBY', batch, 'error:' .. ARGV[19], 1) end
if ARGV[21] ~= '' then redis.call('HINCRBY', batch, 'eval_' .. ARGV[21], 1) end
local done = redis.call('HINCRBY', batch, 'done', 1)

redis.call('HINCRBY', KEYS[16], 'requests:' .. status, 1)
if ARGV[20] ~= '' then
  redis.call('HINCRBY', KEYS[16], 'latency_bucket:' .. ARGV[20], 1)
  redis.call('HINCRBY', KEYS[16], 'latency_sum_ms', fields.latency_ms or 0)
end

local usageKeys = { KEYS[5], KEYS[6], KEYS[7], KEYS[8] }
local members = { ARGV[9], ARGV[10], ARGV[11], ARGV[12] }
if not redis.call('ZSCORE', KEYS[11], members[3]) and redis.call('ZCARD', KEYS[11]) >= MAX_MODELS then
  usageKeys[3], members[3] = KEYS[17], 'other'
end
local tokens = { 'prompt_tokens', 'completion_tokens', 'total_tokens', 'cached_tokens', 'reasoning_tokens' }
for d = 1, 4 do
  local usage = usageKeys[d]
  redis.call('HINCRBY', usage, 'requests', 1)
  redis.call('HINCRBY', usage, status, 1)
  for t = 1, 5 do
    if ARGV[12 + t] ~= '0' then redis.call('HINCRBY', usage, tokens[t], ARGV[12 + t]) end
  end
  if ARGV[18] == '' then
    redis.call('HINCRBY', usage, 'unpriced', 1)
  else
    redis.call('HINCRBY', usage, 'cost_nano', ARGV[18])
  end
  redis.call('ZADD', KEYS[8 + d], now, members[d])
end

if redis.call('LINDEX', lane, 0) == id then
  redis.call('LPOP', lane)
else
  redis.call('LREM', lane, 1, id)
end

if status == 'failed' and redis.call('HGET', req, 'on_failure') == 'halt' then
  local batchId = redis.call('HGET', req, 'batch')
  local skipError = cjson.encode({ code = 'skipped', message = 'not sent: an earlier request of this user in this batch failed, and on_failure is "halt"' })
  local skipped = 0
  for _, other in ipairs(redis.call('LRANGE', lane, 0, -1)) do
    local okey = ARGV[5] .. ':req:' .. other
    if redis.call('HGET', okey, 'batch') == batchId then
      redis.call('LREM', lane, 1, other)
      redis.call('HSET', okey, 'status', 'skipped', 'finished_at', now, 'error', skipError)
      redis.call('EXPIRE', okey, ttl)
      redis.call('EXPIRE', okey .. ':body', ttl)
      skipped = skipped + 1
    end
  end
  if skipped > 0 then
    redis.call('HINCRBY', batch, 'skipped', skipped)
    done = redis.call('HINCRBY', batch, 'done', skipped)
  end
end

local head = redis.call('LINDEX', lane, 0)
if not head then redis.call('SREM', KEYS[4], ARGV[10]) end

local batchStatus = redis.call('HGET', batch, 'status')
if (batchStatus == 'in_progress' or batchStatus == 'cancelling') and done >= tonumber(redis.call('HGET', batch, 'total') or '0') then
  local final = batchStatus == 'in_progress' and 'completed' or 'cancelled'
  redis.call('HSET', batch, 'status', final, final .. '_at', now)
  for _, key in ipairs({ batch, KEYS[13], KEYS[14], KEYS[15], KEYS[19] }) do redis.call('EXPIRE', key, ttl) end
end
return { 'ok', head or '' }
