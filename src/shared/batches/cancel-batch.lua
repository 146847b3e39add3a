--[[
  Cancels the not-yet-running requests of one page of a batch (call it page after page). A cancelled request
  leaves its lane; when it was the lane's head, the next head is returned for the caller to add to BullMQ.
  Requests already running finish normally. A user's cancel turns the batch "cancelling", then "cancelled" when its
  last request is done; a budget turns it so only when it cancels something (a batch whose requests all ran is
  "completed"); a failed import's batch stays "failed". The end of its completion window ("expire") turns an
  in-progress batch "expiring", its unstarted requests "expired", and the batch "expired" when its last is done.
  A batch still being imported is cancelled as soon as its import ends; one whose import is not running (its
  process died) is closed with what it had enqueued and cancelled now.
  KEYS: 1 batch hash, 2 lane set, 3 batch request list, 4 batch custom_id hash, 5 batch error list,
        6 importing set, 7 importer lease, 8 import job (BullMQ hash), 9 batch events
  ARGV: 1 now, 2 ttl (s), 3 key prefix, 4 first index, 5 page size, 6 error (JSON), 7 batch id,
        8 who asks ("user" | "budget" | "import" | "expire"), 9 the admission (admission.lua)
  A cancelled request leaves its project's backlog; a new lane head goes to BullMQ within its project's share of the
  queue, else to its backlog.
  Returns {batch status, new lane heads admitted to BullMQ, ids read}.
]]
--- @include keys
--- @include events
--- @include finished-record
--- @include admission
local batch = KEYS[1]
local now, ttl, prefix, first, size = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
if not tonumber(now) or not ttl or not first or not size or size < 1 or size > 10000 then error('chatq cancel-batch: bad arguments') end
local asker = ARGV[8]
if asker ~= 'user' and asker ~= 'budget' and asker ~= 'import' and asker ~= 'expire' then error('chatq cancel-batch: bad reason') end
local admission = admissionOf(ARGV[9] or '')
local status = redis.call('HGET', batch, 'status')
if asker == 'expire' then
  -- Only a batch at work expires (a cancelled, failed or finished one has ended already; an import, when it ends).
  if status ~= 'in_progress' and status ~= 'expiring' then return { status or 'missing', {}, 0 } end
  if status == 'in_progress' then redis.call('HSET', batch, 'status', 'expiring') end
  status = 'expiring'
end
local ended = asker == 'expire' and 'expired' or 'cancelled'
if status == 'validating' then
  local jobAlive = redis.call('EXISTS', KEYS[8]) == 1 and redis.call('HEXISTS', KEYS[8], 'finishedOn') == 0
  if redis.call('EXISTS', KEYS[7]) == 1 or jobAlive then
    -- Still being imported: the producer cancels it as soon as its requests are all enqueued.
    redis.call('HSET', batch, 'cancel_requested', now)
    return { status, {}, 0 }
  end
  redis.call('HSET', batch, 'status', 'in_progress', 'in_progress_at', now, 'total', redis.call('HGET', batch, 'enqueued') or '0')
  redis.call('SREM', KEYS[6], ARGV[7])
  status = 'in_progress'
end
if status ~= 'in_progress' and status ~= 'cancelling' and status ~= 'failed' and status ~= 'expiring' then return { status or 'missing', {}, 0 } end
local ids = redis.call('LRANGE', KEYS[3], first, first + size - 1)
local heads, cancelled = {}, 0
for _, id in ipairs(ids) do
  local key = KEY.request(prefix, id)
  local f = requestFields(key)
  if f and (f.status == 'queued' or f.status == 'retrying') then
    local lane = KEY.lane(prefix, f.userid)
    local wasHead = redis.call('LINDEX', lane, 0) == id
    redis.call('LREM', lane, 1, id)
    f.status, f.finished_at, f.error = ended, now, ARGV[6]
    writeFinished(prefix, id, f, ttl, false)
    cancelled = cancelled + 1
    redis.call('ZREM', KEY.backlog(prefix, f.project or 'default'), id)
    if wasHead then
      local nextHead = redis.call('LINDEX', lane, 0)
      if nextHead then
        local nextProject = redis.call('HGET', KEY.request(prefix, nextHead), 'project') or 'default'
        for _, admitted in ipairs(admit(prefix, nextProject, { nextHead }, tonumber(now), admission)) do
          heads[#heads + 1] = admitted
        end
      else
        redis.call('SREM', KEYS[2], f.userid)
      end
    end
  end
end
if status == 'in_progress' and (asker == 'user' or cancelled > 0) then
  redis.call('HSET', batch, 'status', 'cancelling', 'cancelling_at', now)
  status = 'cancelling'
end
-- What a request that was waiting for capacity when this ran ends with (the worker cancels it with the same reason).
if redis.call('HEXISTS', batch, 'cancel_reason') == 0 and status ~= 'in_progress' then redis.call('HSET', batch, 'cancel_reason', ARGV[6]) end
local done = tonumber(redis.call('HGET', batch, 'done') or '0')
if cancelled > 0 then
  redis.call('HINCRBY', batch, ended, cancelled)
  done = redis.call('HINCRBY', batch, 'done', cancelled)
end
-- Gradings still to be written (they end unjudged once their batch stops) end it when the last one is.
if done >= tonumber(redis.call('HGET', batch, 'total') or '0') and tonumber(redis.call('HGET', batch, 'judging') or '0') <= 0 then
  if status ~= 'failed' then
    status = FINAL_STATUS[status]
    redis.call('HSET', batch, 'status', status, status .. '_at', now)
    batchEvent(KEYS[9], batch, ARGV[7], status, now)
  end
  for k = 1, 5 do if k ~= 2 then redis.call('EXPIRE', KEYS[k], ttl) end end
end
return { status, heads, #ids }
