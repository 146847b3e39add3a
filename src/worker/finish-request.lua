--[[
  Writes a request's final result, once: a request already finished is left alone (idempotent), so each
  request counts exactly once in the batch counters and usage, whatever was delivered twice.
  The batch's usage is counted here (budgets read it); the user, model and day aggregates and the cluster metrics
  get one record on the pending list, folded in bulk by fold-usage.lua (popped and applied in one script: once).
  Moves the run's budget reservation into the batch's spent cost in the same step, so that no moment counts it
  twice or not at all. Then pops the request from its lane and returns the lane's next head, which the caller adds
  to BullMQ, or hands it to the job that served this request (ARGV[21]): that job serves it next (served_by), and no
  new job is added.
  KEYS: 1 request, 2 batch, 3 lane, 4 lane set, 5 batch usage, 6 batch usage index, 7 batch request list,
        8 batch custom_id hash, 9 batch error list, 10 the user's request index in the project,
        11 the batch's budget reservations, 12 pending usage records, 13 batch events (a batch that ends here)
  ARGV: 1 id, 2 status (succeeded|failed), 3 now, 4 ttl (s), 5 key prefix, 6 fields (JSON array: field, value, ...),
        7 attempt entries of this run (JSON array text without brackets, or ""), 8 upstream calls made in this run,
        9 batch id, 10 userid, 11 prompt, 12 completion, 13 total, 14 cached, 15 reasoning tokens,
        16 cost in nano-USD ("" = unpriced), 17 error code of a failure ("" on success), counted per batch as
        "error:<code>", 18 evaluation grade ("pass" | "fail" | ""), 19 the response body (JSON text, kept as is,
        stored at <request key>:resp; "" when none), 20 the usage record for fold-usage.lua (JSON text),
        21 the serving job's id when it goes on with the lane's next request ("" to hand it to a new job)
  Returns {'ok'|'duplicate'|'missing', next lane head or '', 1 when the next head was handed to the serving job,
           the next head's turn gap (ms: add its job delayed by that much)}.
]]
--- @include keys
--- @include events
-- Every number is checked before the first write: a bad one is an error that leaves nothing half done.
for _, i in ipairs({ 3, 4, 8, 11, 12, 13, 14, 15 }) do
  local v = tonumber(ARGV[i])
  if not v or v < 0 or v > 1e15 or v ~= math.floor(v) then error('chatq finish-request: argument ' .. i .. ' must be a whole number') end
end
if ARGV[16] ~= '' and not string.match(ARGV[16], '^%d+$') then error('chatq finish-request: cost must be whole nano-USD') end
if ARGV[2] ~= 'succeeded' and ARGV[2] ~= 'failed' then error('chatq finish-request: bad status') end
local fields = cjson.decode(ARGV[6])

local req, batch, lane = KEYS[1], KEYS[2], KEYS[3]
local id, status, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- A request finished already (delivered twice): the lane head is returned to be added again, unless the lane was
-- handed to a job that serves it (adding a job of its own would run it twice; the reconciler covers a dead server).
local function unservedHead()
  local head = redis.call('LINDEX', lane, 0)
  if not head or redis.call('HEXISTS', KEY.request(ARGV[5], head), 'served_by') == 1 then return '' end
  return head
end
local current = redis.call('HGET', req, 'status')
if not current then return { 'missing', unservedHead() } end
if current == 'succeeded' or current == 'failed' or current == 'cancelled' or current == 'skipped' or current == 'expired' then
  redis.call('HDEL', KEYS[11], id)
  return { 'duplicate', unservedHead() }
end

local log = ARGV[7] ~= '' and redis.call('HGET', req, 'attempt_log')
if ARGV[7] ~= '' then
  fields[#fields + 1] = 'attempt_log'
  fields[#fields + 1] = (log and (string.sub(log, 1, -2) .. ',') or '[') .. ARGV[7] .. ']'
end
redis.call('HSET', req, 'status', status, 'finished_at', now, unpack(fields))
-- Like the body, the response lives beside the hash, which then stays compact.
if ARGV[19] ~= '' then redis.call('SET', KEY.requestResponse(ARGV[5], id), ARGV[19], 'EX', ttl) end
if ARGV[8] ~= '0' then redis.call('HINCRBY', req, 'attempts', ARGV[8]) end
redis.call('EXPIRE', req, ttl)
redis.call('EXPIRE', KEY.requestBody(ARGV[5], id), ttl)
-- A user's request index lives as long as their latest result.
redis.call('EXPIRE', KEYS[10], ttl)
redis.call('HDEL', KEYS[11], id)

redis.call('HINCRBY', batch, status, 1)
if ARGV[17] ~= '' then redis.call('HINCRBY', batch, 'error:' .. ARGV[17], 1) end
if ARGV[18] ~= '' then redis.call('HINCRBY', batch, 'eval_' .. ARGV[18], 1) end
local done = redis.call('HINCRBY', batch, 'done', 1)

local usage = KEYS[5]
redis.call('HINCRBY', usage, 'requests', 1)
redis.call('HINCRBY', usage, status, 1)
local tokens = { 'prompt_tokens', 'completion_tokens', 'total_tokens', 'cached_tokens', 'reasoning_tokens' }
for t = 1, 5 do
  if ARGV[10 + t] ~= '0' then redis.call('HINCRBY', usage, tokens[t], ARGV[10 + t]) end
end
if ARGV[16] == '' then redis.call('HINCRBY', usage, 'unpriced', 1) else redis.call('HINCRBY', usage, 'cost_nano', ARGV[16]) end
redis.call('ZADD', KEYS[6], now, ARGV[9])
redis.call('RPUSH', KEYS[12], ARGV[20])

if redis.call('LINDEX', lane, 0) == id then
  redis.call('LPOP', lane)
else
  redis.call('LREM', lane, 1, id)
end

if status == 'failed' and redis.call('HGET', req, 'on_failure') == 'halt' then
  local skipError = cjson.encode({ code = 'skipped', message = 'not sent: an earlier request of this user in this batch failed, and on_failure is "halt"' })
  local skipped = 0
  for _, other in ipairs(redis.call('LRANGE', lane, 0, -1)) do
    local okey = KEY.request(ARGV[5], other)
    if redis.call('HGET', okey, 'batch') == ARGV[9] then
      redis.call('LREM', lane, 1, other)
      redis.call('HSET', okey, 'status', 'skipped', 'finished_at', now, 'error', skipError)
      redis.call('EXPIRE', okey, ttl)
      redis.call('EXPIRE', KEY.requestBody(ARGV[5], other), ttl)
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
local handed, gap = 0, 0
if head then
  -- A next turn with a gap (turn_gap_ms) waits that long after this call: not before then, and as a delayed job.
  gap = tonumber(redis.call('HGET', KEY.request(ARGV[5], head), 'gap_ms') or '0') or 0
  if gap > 0 then
    redis.call('HSET', KEY.request(ARGV[5], head), 'not_before', tonumber(now) + gap)
  elseif ARGV[21] ~= '' then
    redis.call('HSET', KEY.request(ARGV[5], head), 'served_by', ARGV[21])
    handed = 1
  end
end

local batchStatus, total = unpack(redis.call('HMGET', batch, 'status', 'total'))
-- The last request done: in progress -> completed, cancelling -> cancelled, expiring (past its window) -> expired.
local FINAL = { in_progress = 'completed', cancelling = 'cancelled', expiring = 'expired' }
if FINAL[batchStatus] and done >= tonumber(total or '0') then
  local final = FINAL[batchStatus]
  redis.call('HSET', batch, 'status', final, final .. '_at', now)
  batchEvent(KEYS[13], batch, ARGV[9], final, now)
  for _, key in ipairs({ batch, KEYS[7], KEYS[8], KEYS[9], KEYS[11] }) do redis.call('EXPIRE', key, ttl) end
end
return { 'ok', head or '', handed, gap }
