--[[
  Cancels the not-yet-running requests of one page of a batch (call it page after page). A cancelled request
  leaves its lane; when it was the lane's head, the next head is returned for the caller to add to BullMQ.
  Requests already running finish normally. A user's cancel turns the batch "cancelling", then "cancelled" when its
  last request is done; a budget turns it so only when it cancels something (a batch whose requests all ran is
  "completed"); a failed import's batch stays "failed". The end of its completion window ("expire") turns an
  in-progress batch "expiring", its unstarted requests "expired", and the batch "expired" when its last is done.
  A batch still being imported is cancelled as soon as its import ends; one whose import is not running (its
  process died) is closed with what it had enqueued and cancelled now.
  Its contract (keys, arguments) is cancelScript's in cancel-batch.ts.
  A cancelled request leaves its project's backlog; a new lane head goes to BullMQ within its project's share of the
  queue, else to its backlog.
  Answers status (the batch's), heads (new lane heads admitted to BullMQ) and read (ids read).
]]
--- @include keys
--- @include events
--- @include finished-record
--- @include admission
--- @include contract
local batch = K.batch
local now, ttl, prefix, first, size = wholeText(A.now), A.ttl_s, A.prefix, A.first, A.size
if size < 1 or size > 10000 then error('chatq cancel-batch: bad page size') end
local asker = A.asker
if asker ~= 'user' and asker ~= 'budget' and asker ~= 'import' and asker ~= 'expire' then error('chatq cancel-batch: bad reason') end
local admission = admissionOf(A.admission)
local status = redis.call('HGET', batch, 'status')
if asker == 'expire' then
  -- Only a batch at work expires (a cancelled, failed or finished one has ended already; an import, when it ends).
  if status ~= 'in_progress' and status ~= 'expiring' then return reply({ status = status or 'missing', heads = {}, read = 0 }) end
  if status == 'in_progress' then redis.call('HSET', batch, 'status', 'expiring') end
  status = 'expiring'
end
local ended = asker == 'expire' and 'expired' or 'cancelled'
if status == 'validating' then
  local jobAlive = redis.call('EXISTS', K.import_job) == 1 and redis.call('HEXISTS', K.import_job, 'finishedOn') == 0
  if redis.call('EXISTS', K.importer) == 1 or jobAlive then
    -- Still being imported: the producer cancels it as soon as its requests are all enqueued.
    redis.call('HSET', batch, 'cancel_requested', now)
    return reply({ status = status, heads = {}, read = 0 })
  end
  redis.call('HSET', batch, 'status', 'in_progress', 'in_progress_at', now, 'total', redis.call('HGET', batch, 'enqueued') or '0')
  redis.call('SREM', K.importing, A.batch_id)
  status = 'in_progress'
end
if status ~= 'in_progress' and status ~= 'cancelling' and status ~= 'failed' and status ~= 'expiring' then return reply({ status = status or 'missing', heads = {}, read = 0 }) end
local ids = redis.call('LRANGE', K.batch_requests, first, first + size - 1)
local heads, cancelled = {}, 0
for _, id in ipairs(ids) do
  local key = KEY.request(prefix, id)
  local record, project = requestRecord(key)
  if record and (record[AT.status] == 'queued' or record[AT.status] == 'retrying') then
    local userid = record[AT.userid]
    local lane = KEY.lane(prefix, userid)
    local wasHead = redis.call('LINDEX', lane, 0) == id
    redis.call('LREM', lane, 1, id)
    record[AT.status], record[AT.finished_at], record[AT.error] = ended, A.now, A.error
    writeRecord(prefix, id, record, ttl, false, nil)
    cancelled = cancelled + 1
    redis.call('ZREM', KEY.backlog(prefix, project), id)
    if wasHead then
      local nextHead = redis.call('LINDEX', lane, 0)
      if nextHead then
        local nextProject = redis.call('HGET', KEY.request(prefix, nextHead), 'project') or 'default'
        for _, admitted in ipairs(admit(prefix, nextProject, { nextHead }, tonumber(now), admission)) do
          heads[#heads + 1] = admitted
        end
      else
        redis.call('SREM', K.lanes, userid)
      end
    end
  end
end
if status == 'in_progress' and (asker == 'user' or cancelled > 0) then
  redis.call('HSET', batch, 'status', 'cancelling', 'cancelling_at', now)
  status = 'cancelling'
end
-- What a request that was waiting for capacity when this ran ends with (the worker cancels it with the same reason).
if redis.call('HEXISTS', batch, 'cancel_reason') == 0 and status ~= 'in_progress' then redis.call('HSET', batch, 'cancel_reason', A.error) end
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
    batchEvent(K.events, batch, A.batch_id, status, now)
  end
  for _, key in ipairs({ batch, K.batch_requests, K.batch_custom_ids, K.batch_errors }) do redis.call('EXPIRE', key, ttl) end
end
return reply({ status = status, heads = heads, read = #ids })
