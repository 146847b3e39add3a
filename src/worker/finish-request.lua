--[[
  Writes a request's final result, once: a request already finished is left alone (idempotent), so each
  request counts exactly once in the batch counters and usage, whatever was delivered twice.
  The batch's cost is counted here (budgets read it); its other usage (requests, tokens), the user, model and day
  aggregates and the cluster metrics get one record on the pending list, folded in bulk by fold-usage.lua (popped
  and applied in one script: once).
  Moves the run's budget reservation into the batch's spent cost in the same step, so that no moment counts it
  twice or not at all. Then pops the request from its lane and returns the lane's next head, which the caller adds
  to BullMQ, or hands it to the job that served this request (ARGV[15]): that job serves it next (served_by), and no
  new job is added; the head is then claimed for that job's next run here, in the same round trip.
  KEYS: 1 request, 2 batch, 3 lane, 4 lane set, 5 batch usage (its cost), 6 batch request list, 7 batch custom_id
        hash, 8 batch error list, 9 the user's request index in the project, 10 the batch's budget reservations,
        11 pending usage records, 12 batch events (a batch that ends here), 13 the request's body, 14 its response,
        15 the user's call lease (begin-call.lua: released here when this run holds it), 16 and 17 BullMQ's waiting
        and prioritized jobs of the queue
  Keys found on the way (the lane's next request, its body, the requests a halt skips) are read before they are
  written, and left alone when missing (as when a resharding has moved them: see claim-request.lua).
  ARGV: 1 id, 2 status (succeeded|failed), 3 now, 4 ttl (s), 5 key prefix, 6 attempt entries of this run (JSON array
        text without brackets, or ""), 7 upstream calls made in this run, 8 batch id, 9 userid, 10 cost in nano-USD
        ("" = unpriced), 11 error code of a failure ("" on success), counted per batch as "error:<code>", 12 evaluation
        grade ("pass" | "fail" | ""), 13 the response as stored (response-codec.ts: compressed JSON; kept at
        <request key>:resp; "" when none), 14 the usage record for fold-usage.lua (JSON text), 15 the serving job's id
        when it goes on with the lane's next request ("" to hand it to a new job; "?" and the id when its time slice
        is over: it goes on only while no other job waits for a slot), 16 "1" when the batch has a budget
        (its reservation is released), "0" when not, "" when unknown, 17 the run's claim number ("" when no run: a job
        given up), 18 the lease (ms: the call timeout and its margin) that a handed head's claim takes for its first
        call ("" for none: begin-call.lua takes it), 19... the result's fields (field, value, ...), written as they are
  A run taken over since its claim (its worker lost its lock) still writes its result when it is the first (counted
  once), but another run's call lease stands: the lane's next request waits it out (claim-request.lua).
  Returns {'ok'|'duplicate'|'missing', next lane head or '', 1 when the next head was handed to the serving job,
           the next head's wait (ms: add its job delayed by that much), the handed head's claim (claim-request.lua)}.
]]
--- @include keys
--- @include events
--- @include claim-request
-- Every number is checked before the first write: a bad one is an error that leaves nothing half done.
for _, i in ipairs({ 3, 4, 7 }) do
  local v = tonumber(ARGV[i])
  if not v or v < 0 or v > 1e15 or v ~= math.floor(v) then error('chatq finish-request: argument ' .. i .. ' must be a whole number') end
end
if ARGV[10] ~= '' and not string.match(ARGV[10], '^%d+$') then error('chatq finish-request: cost must be whole nano-USD') end
if ARGV[2] ~= 'succeeded' and ARGV[2] ~= 'failed' then error('chatq finish-request: bad status') end
if #ARGV < 18 or (#ARGV - 18) % 2 ~= 0 then error('chatq finish-request: fields must come in pairs') end
if ARGV[18] ~= '' and not string.match(ARGV[18], '^[1-9]%d*$') then error('chatq finish-request: the lease must be whole ms') end

local req, batch, lane = KEYS[1], KEYS[2], KEYS[3]
local id, status, now, ttl, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
-- Whether the batch has a budget ("" when the caller does not know: its reservation is released all the same).
local budgetKnown, budgeted = ARGV[16] ~= '', ARGV[16] ~= '0'
-- A request finished already (delivered twice): the lane head is returned to be added again, unless the lane was
-- handed to a job that serves it (adding a job of its own would run it twice; the reconciler covers a dead server).
local function unservedHead()
  local head = redis.call('LINDEX', lane, 0)
  if not head or redis.call('HEXISTS', KEY.request(prefix, head), 'served_by') == 1 then return '' end
  return head
end
-- This run's call has ended, first result or not: its lease goes (another run's stands).
if ARGV[17] ~= '' and redis.call('GET', KEYS[15]) == id .. ':' .. ARGV[17] then redis.call('DEL', KEYS[15]) end
local current, log, attempts, onFailure = unpack(redis.call('HMGET', req, 'status', 'attempt_log', 'attempts', 'on_failure'))
if not current then return { 'missing', unservedHead() } end
if FINISHED_REQUEST[current] then
  redis.call('HDEL', KEYS[10], id)
  -- A second result of one request (its call repeated after the first run was taken over): recorded, never counted.
  if ARGV[17] ~= '' then redis.call('HINCRBY', req, 'repeats', 1) end
  return { 'duplicate', unservedHead() }
end

local result = { 'HSET', req, 'status', status, 'finished_at', now, 'attempts', (tonumber(attempts) or 0) + tonumber(ARGV[7]) }
if ARGV[6] ~= '' then
  result[#result + 1] = 'attempt_log'
  result[#result + 1] = (log and (string.sub(log, 1, -2) .. ',') or '[') .. ARGV[6] .. ']'
end
for i = 19, #ARGV do result[#result + 1] = ARGV[i] end
redis.call(unpack(result))
-- Like the body, the response lives beside the hash, which then stays compact.
if ARGV[13] ~= '' then redis.call('SET', KEYS[14], ARGV[13], 'EX', ttl) end
redis.call('EXPIRE', req, ttl)
redis.call('EXPIRE', KEYS[13], ttl)
-- A user's request index lives as long as their latest result.
redis.call('EXPIRE', KEYS[9], ttl)
if budgeted then redis.call('HDEL', KEYS[10], id) end

redis.call('HINCRBY', batch, status, 1)
if ARGV[11] ~= '' then redis.call('HINCRBY', batch, 'error:' .. ARGV[11], 1) end
if ARGV[12] ~= '' then redis.call('HINCRBY', batch, 'eval_' .. ARGV[12], 1) end
local done = redis.call('HINCRBY', batch, 'done', 1)

-- The cost at once (a budget must see it with the reservation gone); the rest of the usage through the fold.
if ARGV[10] ~= '' and ARGV[10] ~= '0' then redis.call('HINCRBY', KEYS[5], 'cost_nano', ARGV[10]) end
redis.call('RPUSH', KEYS[11], ARGV[14])

-- The request is its lane's head (but for a cancel or a reconcile that moved things): popped, else taken out.
local popped = redis.call('LPOP', lane)
if popped ~= id then
  if popped then redis.call('LPUSH', lane, popped) end
  redis.call('LREM', lane, 1, id)
end

if status == 'failed' and onFailure == 'halt' then
  local skipError = cjson.encode({ code = 'skipped', message = 'not sent: an earlier request of this user in this batch failed, and on_failure is "halt"' })
  local skipped = 0
  for _, other in ipairs(redis.call('LRANGE', lane, 0, -1)) do
    local okey = KEY.request(prefix, other)
    if redis.call('HGET', okey, 'batch') == ARGV[8] then
      redis.call('LREM', lane, 1, other)
      redis.call('HSET', okey, 'status', 'skipped', 'finished_at', now, 'error', skipError)
      redis.call('EXPIRE', okey, ttl)
      redis.call('EXPIRE', KEY.requestBody(prefix, other), ttl)
      skipped = skipped + 1
    end
  end
  if skipped > 0 then
    redis.call('HINCRBY', batch, 'skipped', skipped)
    done = redis.call('HINCRBY', batch, 'done', skipped)
  end
end

local head = redis.call('LINDEX', lane, 0)
if not head then redis.call('SREM', KEYS[4], ARGV[9]) end

local batchStatus, total, onImportError = unpack(redis.call('HMGET', batch, 'status', 'total', 'on_import_error'))
if FINAL_STATUS[batchStatus] and done >= tonumber(total or '0') then
  local final = FINAL_STATUS[batchStatus]
  redis.call('HSET', batch, 'status', final, final .. '_at', now)
  batchEvent(KEYS[12], batch, ARGV[8], final, now)
  for _, key in ipairs({ batch, KEYS[6], KEYS[7], KEYS[8], KEYS[10] }) do redis.call('EXPIRE', key, ttl) end
end
if not head then return { 'ok', '', 0, 0 } end
-- The next head goes on in the serving job, claimed here; or to a new job. A turn gap (gap_ms) after this call is
-- waited out as a delayed job, not before then.
local serving = ARGV[15]
if string.sub(serving, 1, 1) == '?' then
  local waiting = redis.call('LLEN', KEYS[16]) + redis.call('ZCARD', KEYS[17])
  serving = waiting == 0 and string.sub(serving, 2) or ''
end
if serving ~= '' then
  local claim = claimRequest(prefix, head, now, { job = serving, batch = ARGV[8], budgeted = budgetKnown and (budgeted and 1 or 0) or nil, status = batchStatus, onImportError = onImportError, leaseMs = tonumber(ARGV[18]) })
  if claim[1] == 'run' then return { 'ok', head, 1, 0, claim } end
  return { 'ok', head, 0, claim[1] == 'wait' and claim[2] or 0 }
end
local gap = tonumber(redis.call('HGET', KEY.request(prefix, head), 'gap_ms') or '0') or 0
if gap > 0 then redis.call('HSET', KEY.request(prefix, head), 'not_before', tonumber(now) + gap) end
return { 'ok', head, 0, gap }
