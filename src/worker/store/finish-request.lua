--[[
  Writes a request's final result, once: a request already finished is left alone (idempotent), so each
  request counts exactly once in the batch counters and usage, whatever was delivered twice.
  The batch's cost is counted here (budgets read it); its other usage (requests, tokens), the user, model and day
  aggregates and the cluster metrics get one record on the pending list, folded in bulk by fold-usage.lua (popped
  and applied in one script: once).
  Moves the run's budget reservation into the batch's spent cost in the same step, so that no moment counts it
  twice or not at all. Then pops the request from its lane and returns the lane's next head, which the caller adds
  to BullMQ, or hands it to the job that served this request (serving_job): that job serves it next (served_by), and no
  new job is added; the head is then claimed for that job's next run here, in the same round trip.
  Its contract (keys, arguments, reply: each by name) is finishContract in finish-call.ts, where each is described.
  Keys found on the way (the lane's next request, its body, the requests a halt skips) are read before they are
  written, and left alone when missing (as when a resharding has moved them: see claim-request.lua).
  A run taken over since its claim (its worker lost its lock) still writes its result when it is the first (counted
  once), but another run's call lease stands: the lane's next request waits it out (claim-request.lua).
  A second result whose reply is another call's (upstream_request_id) is repeat spend: its cost goes to the batch's
  cost at once, and its usage record, marked repeat, to the fold.
  A batch ends when its requests are done and its gradings written ("judging" back at 0).
  Answers by name: outcome ("ok" | "duplicate" | "missing"), next_head (the lane's next request, or ""), handed (true
  when that head was handed to the serving job), wait_ms (the next head's turn gap: add its job delayed by that
  much), claim (the handed head's claim, as claim-request.lua answers it; only when handed), grading_head (the
  grading request made here, when admitted to BullMQ at once; else "").
]]
--- @include keys
--- @include events
--- @include finished-record
--- @include claim-request
--- @include admission
--- @include contract
-- Every argument is checked before the first write: a bad one is an error that leaves nothing half done.
admissionOf(A.admission)
if A.status ~= 'succeeded' and A.status ~= 'failed' then error('chatq finish-request: bad status') end
if A.grade and A.grade ~= 'pass' and A.grade ~= 'fail' then error('chatq finish-request: bad grade') end
if A.judged_of and not (A.judged_grade and (A.verdict == 'pass' or A.verdict == 'fail' or A.verdict == 'ungraded')) then error('chatq finish-request: a grading needs its grade and verdict') end
local grading = A.grading
if grading and not (type(grading.id) == 'string' and type(grading.lane) == 'string' and type(grading.custom_id) == 'string' and type(grading.model) == 'string' and type(grading.judges) == 'string' and type(grading.body) == 'string') then error('chatq finish-request: bad grading') end
if A.lease_ms == 0 then error('chatq finish-request: the lease must be whole ms') end

local req, batch, lane = K.request, K.batch, K.lane
local id, status, now, ttl, prefix = A.id, A.status, wholeText(A.now), A.ttl_s, A.prefix
-- Whether the batch has a budget (unknown: its reservation is released all the same).
local budgetKnown, budgeted = A.budgeted ~= nil, A.budgeted ~= false
-- A request finished already (delivered twice): the lane head is returned to be added again, unless the lane was
-- handed to a job that serves it (adding a job of its own would run it twice; the reconciler covers a dead server).
local function unservedHead()
  local head = redis.call('LINDEX', lane, 0)
  if not head or redis.call('HEXISTS', KEY.request(prefix, head), 'served_by') == 1 then return '' end
  return head
end
-- This run's call has ended, first result or not: its lease goes (another run's stands). With none left, the lane's
-- next request claimed here needs no look at it.
local leaseFree = false
if A.claim then
  local holder = redis.call('GET', K.lease)
  if holder == id .. ':' .. wholeText(A.claim) then redis.call('DEL', K.lease) end
  leaseFree = not holder or holder == id .. ':' .. wholeText(A.claim)
end
local record, project = requestRecord(req)
if not record and redis.call('EXISTS', K.done) == 0 then return reply({ outcome = 'missing', next_head = unservedHead(), handed = false, wait_ms = 0, grading_head = '' }) end
-- Finished already (its record stands for it): a second result of one request (its call repeated after the first run
-- was taken over) is never counted.
if not record then
  redis.call('HDEL', K.reservations, id)
  -- But a call the upstream answered again (another run's: its reply's id is not the counted result's) was paid for:
  -- its cost and usage count as repeat spend (the fold adds them to the aggregates apart as well).
  local upstream = A.fields.upstream_request_id
  local counted = finishedRecord(prefix, id)
  if upstream and upstream ~= (counted and counted[AT.upstream_request_id]) then
    if A.cost_nano and A.cost_nano > 0 then redis.call('HINCRBY', K.batch_usage, 'cost_nano', wholeText(A.cost_nano)) end
    local record = cjson.decode(A.usage_record)
    record['repeat'] = true
    redis.call('RPUSH', K.pending_usage, cjson.encode(record))
  end
  return reply({ outcome = 'duplicate', next_head = unservedHead(), handed = false, wait_ms = 0, grading_head = '' })
end

local onFailure, line = record[AT.on_failure], record[AT.line]
record[AT.status], record[AT.finished_at], record[AT.attempts] = status, A.now, (tonumber(record[AT.attempts]) or 0) + A.calls
for name, value in pairs(A.fields) do record[AT[name]] = value end
writeRecord(prefix, id, record, ttl, A.response or false, A.attempts)
-- A user's request index lives as long as their latest result.
redis.call('EXPIRE', K.user_requests, ttl)
if budgeted then redis.call('HDEL', K.reservations, id) end

if A.judged_of then
  -- A grading: its verdict goes into the judged request's grade and the batch's evaluation counts.
  local judged = redis.call('GET', K.judged_done)
  if judged then
    local judgedRecord, response = unframed(judged)
    judgedRecord[AT.grade] = A.judged_grade
    redis.call('SET', K.judged_done, framed(judgedRecord, response), 'KEEPTTL')
  end
  redis.call('HINCRBY', batch, 'eval_' .. A.verdict, 1)
  redis.call('HINCRBY', batch, 'judging', -1)
else
  redis.call('HINCRBY', batch, status, 1)
  if A.error_code then redis.call('HINCRBY', batch, 'error:' .. A.error_code, 1) end
  if A.grade then redis.call('HINCRBY', batch, 'eval_' .. A.grade, 1) end
  redis.call('HINCRBY', batch, 'done', 1)
end
local gradingHead = ''
if grading then
  -- Its grading request, on a lane of its own: queued like any request of the batch, never in the user's lane.
  local fields = { 'HSET', K.grading, 'batch', A.batch, 'custom_id', grading.custom_id, 'userid', grading.lane, 'model', grading.model, 'line', line or '0', 'status', 'queued', 'created_at', now, 'judges', grading.judges }
  if project ~= 'default' then
    fields[#fields + 1] = 'project'
    fields[#fields + 1] = project
  end
  redis.call(unpack(fields))
  redis.call('SET', K.grading_body, grading.body)
  redis.call('RPUSH', K.grading_lane, grading.id)
  redis.call('SADD', K.lanes, grading.lane)
  redis.call('HINCRBY', batch, 'judging', 1)
  gradingHead = admit(prefix, project, { grading.id }, A.now, A.admission)[1] or ''
end

-- The cost at once (a budget must see it with the reservation gone); the rest of the usage through the fold.
if A.cost_nano and A.cost_nano > 0 then redis.call('HINCRBY', K.batch_usage, 'cost_nano', wholeText(A.cost_nano)) end
redis.call('RPUSH', K.pending_usage, A.usage_record)

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
    local key = KEY.request(prefix, other)
    local skip = requestRecord(key)
    if skip and redis.call('HGET', key, 'batch') == A.batch then
      redis.call('LREM', lane, 1, other)
      skip[AT.status], skip[AT.finished_at], skip[AT.error] = 'skipped', A.now, skipError
      writeRecord(prefix, other, skip, ttl, false, nil)
      skipped = skipped + 1
    end
  end
  if skipped > 0 then
    redis.call('HINCRBY', batch, 'skipped', skipped)
    redis.call('HINCRBY', batch, 'done', skipped)
  end
end

local head = redis.call('LINDEX', lane, 0)
if not head then redis.call('SREM', K.lanes, A.userid) end

local batchStatus, total, onImportError, cancelAsked, done, judging = unpack(redis.call('HMGET', batch, 'status', 'total', 'on_import_error', 'cancel_requested', 'done', 'judging'))
if FINAL_STATUS[batchStatus] and tonumber(done or '0') >= tonumber(total or '0') and tonumber(judging or '0') <= 0 then
  local final = FINAL_STATUS[batchStatus]
  redis.call('HSET', batch, 'status', final, final .. '_at', now)
  batchEvent(K.events, batch, A.batch, final, now)
  for _, key in ipairs({ batch, K.batch_requests, K.batch_custom_ids, K.batch_errors, K.reservations }) do redis.call('EXPIRE', key, ttl) end
end
if not head then return reply({ grading_head = gradingHead, outcome = 'ok', next_head = '', handed = false, wait_ms = 0 }) end
-- The next head goes on in the serving job, claimed here; or to a new job. A turn gap (gap_ms) after this call is
-- waited out as a delayed job, not before then.
local serving = A.serving_job or ''
-- Read once, when first asked (the share check and the catch-up both ask).
local otherWaits
local function otherProjectWaits()
  if otherWaits == nil then
    otherWaits = false
    for _, p in ipairs(redis.call('SMEMBERS', KEY.queuedProjects(prefix))) do
      if p ~= project then otherWaits = true end
    end
  end
  return otherWaits
end
-- While another project has heads waiting here, a lane of a project at or over its share of the worker's slots does
-- not keep its slot past this turn if anything waits (projects share the slots turn by turn: admission.lua).
if serving ~= '' and string.sub(serving, 1, 1) ~= '?' and not A.within_share and otherProjectWaits() then
  serving = '?' .. serving
end
-- A lane behind its batch keeps its slot past its slice, while no other project has heads waiting: its user has done
-- a smaller share of their requests (the next head's place in the lane at enqueue, against what is left in it) than
-- the batch has of its own. So a user whose calls were slow catches up, and the batch's last turns do not trail
-- behind the rest, one after another (bench/high-concurrency).
local function behindItsBatch()
  local headBatch, ahead = unpack(redis.call('HMGET', KEY.request(prefix, head), 'batch', 'ahead'))
  if headBatch ~= A.batch or otherProjectWaits() then return false end
  local doneHere = tonumber(ahead or '0') or 0
  -- While it is imported, a batch counts the requests enqueued so far.
  local requests = tonumber(total or redis.call('HGET', batch, 'enqueued') or '0') or 0
  return doneHere * requests < tonumber(done or '0') * (doneHere + redis.call('LLEN', lane))
end
if string.sub(serving, 1, 1) == '?' then
  local waiting = redis.call('LLEN', K.queue_wait) + redis.call('ZCARD', K.queue_prioritized)
  serving = (waiting == 0 or behindItsBatch()) and string.sub(serving, 2) or ''
end
if serving ~= '' then
  local hand = { job = serving, batch = A.batch, status = cancelAsked and 'cancelling' or batchStatus, onImportError = onImportError, leaseFree = leaseFree }
  if budgetKnown then hand.budgeted = budgeted end
  local claim = claimRequest(prefix, head, now, hand, A.lease_ms)
  if claim.state == 'run' then return reply({ grading_head = gradingHead, outcome = 'ok', next_head = head, handed = true, wait_ms = 0, claim = claim }) end
  return reply({ grading_head = gradingHead, outcome = 'ok', next_head = head, handed = false, wait_ms = claim.wait_ms or 0 })
end
local gap, headProject = unpack(redis.call('HMGET', KEY.request(prefix, head), 'gap_ms', 'project'))
gap = tonumber(gap or '0') or 0
if gap > 0 then
  -- A turn gap is the user's own pace, not a share of the queue: its delayed job is not held back.
  redis.call('HSET', KEY.request(prefix, head), 'not_before', tonumber(now) + gap)
  return reply({ grading_head = gradingHead, outcome = 'ok', next_head = head, handed = false, wait_ms = gap })
end
-- Within its project's share of the queue, else it waits in the project's backlog (admission.lua).
local admitted = admit(prefix, headProject or 'default', { head }, tonumber(now), A.admission)
return reply({ grading_head = gradingHead, outcome = 'ok', next_head = admitted[1] or '', handed = false, wait_ms = 0 })

