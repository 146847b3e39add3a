--[[
  Writes a request's final result, once: a request already finished is left alone (idempotent), so each
  request counts exactly once in the batch counters and usage, whatever was delivered twice.
  The batch's cost is counted here (budgets read it); its other usage (requests, tokens), the user, model and day
  aggregates and the cluster metrics get one record on the pending list, folded in bulk by fold-usage.lua (popped
  and applied in one script: once).
  Moves the run's budget reservation into the batch's spent cost in the same step, so that no moment counts it
  twice or not at all. Then pops the request from its lane and returns the lane's next head, which the caller adds
  to BullMQ, or hands it to the job that served this request (ARGV[16]): that job serves it next (served_by), and no
  new job is added; the head is then claimed for that job's next run here, in the same round trip.
  KEYS: 1 request, 2 batch, 3 lane, 4 lane set, 5 batch usage (its cost), 6 batch request list, 7 batch custom_id
        hash, 8 batch error list, 9 the user's request index in the project, 10 the batch's budget reservations,
        11 pending usage records, 12 batch events (a batch that ends here)
  ARGV: 1 id, 2 status (succeeded|failed), 3 now, 4 ttl (s), 5 key prefix, 6 fields (JSON array: field, value, ...),
        7 attempt entries of this run (JSON array text without brackets, or ""), 8 upstream calls made in this run,
        9 batch id, 10 userid, 11 cost in nano-USD ("" = unpriced), 12 error code of a failure ("" on success),
        counted per batch as "error:<code>", 13 evaluation grade ("pass" | "fail" | ""), 14 the response as stored
        (response-codec.ts: compressed JSON; kept at <request key>:resp; "" when none), 15 the usage record for
        fold-usage.lua (JSON text), 16 the serving job's id when it goes on with the lane's next request ("" to
        hand it to a new job)
  Returns {'ok'|'duplicate'|'missing', next lane head or '', 1 when the next head was handed to the serving job,
           the next head's turn gap (ms: add its job delayed by that much), the handed head's claim (claim-request.lua)}.
]]
--- @include keys
--- @include events
--- @include claim-request
-- Every number is checked before the first write: a bad one is an error that leaves nothing half done.
for _, i in ipairs({ 3, 4, 8 }) do
  local v = tonumber(ARGV[i])
  if not v or v < 0 or v > 1e15 or v ~= math.floor(v) then error('chatq finish-request: argument ' .. i .. ' must be a whole number') end
end
if ARGV[11] ~= '' and not string.match(ARGV[11], '^%d+$') then error('chatq finish-request: cost must be whole nano-USD') end
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
  redis.call('HDEL', KEYS[10], id)
  return { 'duplicate', unservedHead() }
end

local log = ARGV[7] ~= '' and redis.call('HGET', req, 'attempt_log')
if ARGV[7] ~= '' then
  fields[#fields + 1] = 'attempt_log'
  fields[#fields + 1] = (log and (string.sub(log, 1, -2) .. ',') or '[') .. ARGV[7] .. ']'
end
redis.call('HSET', req, 'status', status, 'finished_at', now, unpack(fields))
-- Like the body, the response lives beside the hash, which then stays compact.
if ARGV[14] ~= '' then redis.call('SET', KEY.requestResponse(ARGV[5], id), ARGV[14], 'EX', ttl) end
if ARGV[8] ~= '0' then redis.call('HINCRBY', req, 'attempts', ARGV[8]) end
redis.call('EXPIRE', req, ttl)
redis.call('EXPIRE', KEY.requestBody(ARGV[5], id), ttl)
-- A user's request index lives as long as their latest result.
redis.call('EXPIRE', KEYS[9], ttl)
redis.call('HDEL', KEYS[10], id)

redis.call('HINCRBY', batch, status, 1)
if ARGV[12] ~= '' then redis.call('HINCRBY', batch, 'error:' .. ARGV[12], 1) end
if ARGV[13] ~= '' then redis.call('HINCRBY', batch, 'eval_' .. ARGV[13], 1) end
local done = redis.call('HINCRBY', batch, 'done', 1)

-- The cost at once (a budget must see it with the reservation gone); the rest of the usage through the fold.
if ARGV[11] ~= '' and ARGV[11] ~= '0' then redis.call('HINCRBY', KEYS[5], 'cost_nano', ARGV[11]) end
redis.call('RPUSH', KEYS[11], ARGV[15])

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
  elseif ARGV[16] ~= '' then
    redis.call('HSET', KEY.request(ARGV[5], head), 'served_by', ARGV[16])
    handed = 1
  end
end

local batchStatus, total = unpack(redis.call('HMGET', batch, 'status', 'total'))
if FINAL_STATUS[batchStatus] and done >= tonumber(total or '0') then
  local final = FINAL_STATUS[batchStatus]
  redis.call('HSET', batch, 'status', final, final .. '_at', now)
  batchEvent(KEYS[12], batch, ARGV[9], final, now)
  for _, key in ipairs({ batch, KEYS[6], KEYS[7], KEYS[8], KEYS[10] }) do redis.call('EXPIRE', key, ttl) end
end
if handed == 1 then return { 'ok', head, handed, gap, claimRequest(ARGV[5], head, now) } end
return { 'ok', head or '', handed, gap }
