--[[
  Writes a request's final result, once: a request already finished is left alone (idempotent), so each
  request counts exactly once in the batch counters and usage aggregates, whatever was delivered twice.
  Then pops it from its lane and returns the lane's next head, which the caller adds to BullMQ.
  KEYS: 1 request, 2 batch, 3 lane, 4 lane set, 5-8 usage by batch/user/model/day, 9-12 their indexes,
        13 batch request list, 14 batch custom_id hash, 15 batch error list, 16 cluster-wide metrics hash
  ARGV: 1 id, 2 status (succeeded|failed), 3 now, 4 ttl (s), 5 key prefix, 6 fields (JSON object),
        7 attempt entries (JSON array text without brackets, or ""), 8 upstream calls beyond the first,
        9-12 usage index members (batch, userid, model, day),
        13 prompt, 14 completion, 15 total, 16 cached, 17 reasoning tokens, 18 cost in nano-USD ("" = unpriced),
        19 error code of a failure ("" on success), counted per batch as "error:<code>",
        20 latency bucket of the call ("" when no call answered), for the cluster-wide latency histogram,
        21 evaluation grade ("pass" | "fail" | "" when the request has no expectations),
        22 the response body (JSON text, kept as is, stored at <request key>:resp; "" when none)
  Returns {'ok'|'duplicate'|'missing', next lane head or '', 1 when the batch has spent its max_cost_nano}.
]]
local req, batch, lane = KEYS[1], KEYS[2], KEYS[3]
local id, status, now, ttl, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local current = redis.call('HGET', req, 'status')
if not current then return { 'missing', redis.call('LINDEX', lane, 0) or '' } end
if current == 'succeeded' or current == 'failed' or current == 'cancelled' or current == 'skipped' then
  return { 'duplicate', redis.call('LINDEX', lane, 0) or '' }
end

local fields = cjson.decode(ARGV[6])
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
redis.call('EXPIRE', prefix .. ':user:' .. ARGV[10] .. ':reqs', ttl)

redis.call('HINCRBY', batch, status, 1)
if ARGV[19] ~= '' then redis.call('HINCRBY', batch, 'error:' .. ARGV[19], 1) end
if ARGV[21] ~= '' then redis.call('HINCRBY', batch, 'eval_' .. ARGV[21], 1) end
local done = redis.call('HINCRBY', batch, 'done', 1)

redis.call('HINCRBY', KEYS[16], 'requests:' .. status, 1)
if ARGV[20] ~= '' then
  redis.call('HINCRBY', KEYS[16], 'latency_bucket:' .. ARGV[20], 1)
  redis.call('HINCRBY', KEYS[16], 'latency_sum_ms', fields.latency_ms or 0)
end

local tokens = { 'prompt_tokens', 'completion_tokens', 'total_tokens', 'cached_tokens', 'reasoning_tokens' }
for d = 0, 3 do
  local usage = KEYS[5 + d]
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
  redis.call('SADD', KEYS[9 + d], ARGV[9 + d])
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
    local okey = prefix .. ':req:' .. other
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
  for _, key in ipairs({ batch, KEYS[13], KEYS[14], KEYS[15] }) do redis.call('EXPIRE', key, ttl) end
end
local budget = redis.call('HGET', batch, 'max_cost_nano')
local spent = budget and tonumber(redis.call('HGET', KEYS[5], 'cost_nano') or '0') >= tonumber(budget)
return { 'ok', head or '', spent and batchStatus == 'in_progress' and 1 or 0 }
