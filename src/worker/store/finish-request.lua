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
  KEYS: 1 request, 2 batch, 3 lane, 4 lane set, 5 batch usage (its cost), 6 batch request list, 7 batch custom_id
        hash, 8 batch error list, 9 the user's request index in the project, 10 the batch's budget reservations,
        11 pending usage records, 12 batch events (a batch that ends here), 13 the request's body, 14 its finished
        record (finished-record.ts: its fields, body and response in one string, which replaces the hash and body),
        15 the user's call lease (begin-call.lua: released here when this run holds it), 16 and 17 BullMQ's waiting
        and prioritized jobs of the queue, 18 the grading request this result makes (its hash), 19 its body, 20 its
        lane, 21 the finished record of the request a grading judges (when this is a grading)
  Keys found on the way (the lane's next request, its body, the requests a halt skips) are read before they are
  written, and left alone when missing (as when a resharding has moved them: see claim-request.lua).
  ARGV[1]: the named arguments (--- @include args):
    id, status ("succeeded" | "failed"), now (ms), ttl_s, prefix (the key prefix), batch, userid;
    attempt_log: this run's attempt entries (JSON array text without brackets; left out when none);
    calls: upstream calls made in this run;
    cost_nano: the cost in nano-USD (left out: unpriced);
    error_code: a failure's code, counted per batch as "error:<code>";
    grade: "pass" | "fail" (an evaluation's);
    usage_record: the usage record for fold-usage.lua (JSON text);
    serving_job: the serving job's id when it goes on with the lane's next request (left out: a new job takes it;
      "?" and the id when its time slice is over: it goes on only while no other job waits for a slot);
    within_share: the serving job's project holds less than its share of the worker's call slots (it keeps its slot
      for its slice while another project has heads waiting; else it goes on only while no job waits);
    budgeted: whether the batch has a budget (its reservation is released; left out when unknown);
    claim: the run's claim number (left out when no run: a job given up);
    lease_ms: the lease (the call timeout and its margin) that a handed head's claim takes for its first call (left
      out: begin-call.lua takes it);
    admission: the projects' shares of the queue (admission.lua): a next head not handed on goes to BullMQ within
      its project's, else to the project's backlog (next_head is then "");
    grading: the grading request this result makes (expect.judge: JSON {id, lane, custom_id, model, judges, body}):
      written with the result, on a lane of its own (no user's: the user's next turn does not wait for it), counted
      in the batch's "judging" until its judgement is written;
    judged_of, judged_grade, verdict: this request is a grading: the request it judges, that request's grade with the
      verdict in (written into its record), and the verdict ("pass" | "fail" | "ungraded", counted as eval_<verdict>).
      A grading is not one of the batch's requests: it moves "judging", not the request counters.
  ARGV[2]: the response as stored (response-codec.ts: compressed JSON; "" when none);
  ARGV[3...]: the result's fields (field, value, ...), kept as they are (those of FINISHED_RECORD_FIELDS).
  A run taken over since its claim (its worker lost its lock) still writes its result when it is the first (counted
  once), but another run's call lease stands: the lane's next request waits it out (claim-request.lua).
  A second result whose reply is another call's (upstream_request_id) is repeat spend: its cost goes to the batch's
  cost at once, and its usage record, marked rp, to the fold.
  A batch ends when its requests are done and its gradings written ("judging" back at 0).
  Answers by name: outcome ("ok" | "duplicate" | "missing"), next_head (the lane's next request, or ""), handed (1
  when that head was handed to the serving job), wait_ms (the next head's turn gap: add its job delayed by that
  much), claim (the handed head's claim, as claim-request.lua answers it; only when handed), grading_head (the
  grading request made here, when admitted to BullMQ at once; else "").
]]
--- @include keys
--- @include events
--- @include finished-record
--- @include claim-request
--- @include admission
--- @include attempt-log
--- @include args
-- Every argument is checked before the first write: a bad one is an error that leaves nothing half done.
local A = namedArgs('finish-request', {
  id = 'string', status = 'string', now = 'whole', ttl_s = 'whole', prefix = 'string', batch = 'string',
  userid = 'string', attempt_log = 'string?', calls = 'whole', cost_nano = 'whole?', error_code = 'string?',
  grade = 'string?', usage_record = 'string', serving_job = 'string?', budgeted = 'boolean?', claim = 'whole?',
  lease_ms = 'whole?', admission = 'string', within_share = 'boolean?', grading = 'string?', judged_of = 'string?',
  judged_grade = 'string?', verdict = 'string?',
})
admissionOf(A.admission)
if A.status ~= 'succeeded' and A.status ~= 'failed' then error('chatq finish-request: bad status') end
if A.grade and A.grade ~= 'pass' and A.grade ~= 'fail' then error('chatq finish-request: bad grade') end
if A.judged_of and not (A.judged_grade and (A.verdict == 'pass' or A.verdict == 'fail' or A.verdict == 'ungraded')) then error('chatq finish-request: a grading needs its grade and verdict') end
local grading = A.grading and cjson.decode(A.grading)
if grading and not (type(grading.id) == 'string' and type(grading.lane) == 'string' and type(grading.custom_id) == 'string' and type(grading.model) == 'string' and type(grading.judges) == 'string' and type(grading.body) == 'string') then error('chatq finish-request: bad grading') end
if A.lease_ms == 0 then error('chatq finish-request: the lease must be whole ms') end
if (#ARGV - 2) % 2 ~= 0 then error('chatq finish-request: fields must come in pairs') end

local req, batch, lane = KEYS[1], KEYS[2], KEYS[3]
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
-- This run's call has ended, first result or not: its lease goes (another run's stands).
if A.claim and redis.call('GET', KEYS[15]) == id .. ':' .. wholeText(A.claim) then redis.call('DEL', KEYS[15]) end
local f = requestFields(req)
if not f and redis.call('EXISTS', KEYS[14]) == 0 then return { 'outcome', 'missing', 'next_head', unservedHead(), 'handed', 0, 'wait_ms', 0 } end
-- Finished already (its record stands for it): a second result of one request (its call repeated after the first run
-- was taken over) is never counted.
if not f then
  redis.call('HDEL', KEYS[10], id)
  -- But a call the upstream answered again (another run's: its reply's id is not the counted result's) was paid for:
  -- its cost and usage count as repeat spend (the fold adds them to the aggregates apart as well).
  local upstream
  for i = 3, #ARGV, 2 do
    if ARGV[i] == 'upstream_request_id' then upstream = ARGV[i + 1] end
  end
  local counted = finishedFields(prefix, id) or {}
  if upstream and upstream ~= counted.upstream_request_id then
    if A.cost_nano and A.cost_nano > 0 then redis.call('HINCRBY', KEYS[5], 'cost_nano', wholeText(A.cost_nano)) end
    local record = cjson.decode(A.usage_record)
    record.rp = 1
    redis.call('RPUSH', KEYS[11], cjson.encode(record))
  end
  return { 'outcome', 'duplicate', 'next_head', unservedHead(), 'handed', 0, 'wait_ms', 0 }
end

local onFailure = f.on_failure
f.status, f.finished_at, f.attempts = status, now, tostring((tonumber(f.attempts) or 0) + A.calls)
if A.attempt_log then f.attempt_log = appendAttempts(f.attempt_log, A.attempt_log) end
for i = 3, #ARGV, 2 do f[ARGV[i]] = ARGV[i + 1] end
writeFinished(prefix, id, f, ttl, ARGV[2] ~= '' and ARGV[2])
-- A user's request index lives as long as their latest result.
redis.call('EXPIRE', KEYS[9], ttl)
if budgeted then redis.call('HDEL', KEYS[10], id) end

local done, judging
if A.judged_of then
  -- A grading: its verdict goes into the judged request's grade and the batch's evaluation counts.
  local judged = redis.call('GET', KEYS[21])
  if judged then
    local record = cmsgpack.unpack(judged)
    record[FINISHED_FIELD_INDEX.grade + 1] = A.judged_grade
    redis.call('SET', KEYS[21], cmsgpack.pack(record), 'KEEPTTL')
  end
  redis.call('HINCRBY', batch, 'eval_' .. A.verdict, 1)
  judging = redis.call('HINCRBY', batch, 'judging', -1)
  done = tonumber(redis.call('HGET', batch, 'done') or '0')
else
  redis.call('HINCRBY', batch, status, 1)
  if A.error_code then redis.call('HINCRBY', batch, 'error:' .. A.error_code, 1) end
  if A.grade then redis.call('HINCRBY', batch, 'eval_' .. A.grade, 1) end
  done = redis.call('HINCRBY', batch, 'done', 1)
  judging = tonumber(redis.call('HGET', batch, 'judging') or '0')
end
local gradingHead = ''
if grading then
  -- Its grading request, on a lane of its own: queued like any request of the batch, never in the user's lane.
  local fields = { 'HSET', KEYS[18], 'batch', A.batch, 'custom_id', grading.custom_id, 'userid', grading.lane, 'model', grading.model, 'line', f.line or '0', 'status', 'queued', 'created_at', now, 'judges', grading.judges }
  if f.project then
    fields[#fields + 1] = 'project'
    fields[#fields + 1] = f.project
  end
  redis.call(unpack(fields))
  redis.call('SET', KEYS[19], grading.body)
  redis.call('RPUSH', KEYS[20], grading.id)
  redis.call('SADD', KEYS[4], grading.lane)
  judging = redis.call('HINCRBY', batch, 'judging', 1)
  gradingHead = admit(prefix, f.project or 'default', { grading.id }, tonumber(now), admissionOf(A.admission))[1] or ''
end

-- The cost at once (a budget must see it with the reservation gone); the rest of the usage through the fold.
if A.cost_nano and A.cost_nano > 0 then redis.call('HINCRBY', KEYS[5], 'cost_nano', wholeText(A.cost_nano)) end
redis.call('RPUSH', KEYS[11], A.usage_record)

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
    local of = requestFields(KEY.request(prefix, other))
    if of and of.batch == A.batch then
      redis.call('LREM', lane, 1, other)
      of.status, of.finished_at, of.error = 'skipped', now, skipError
      writeFinished(prefix, other, of, ttl, false)
      skipped = skipped + 1
    end
  end
  if skipped > 0 then
    redis.call('HINCRBY', batch, 'skipped', skipped)
    done = redis.call('HINCRBY', batch, 'done', skipped)
  end
end

local head = redis.call('LINDEX', lane, 0)
if not head then redis.call('SREM', KEYS[4], A.userid) end

local batchStatus, total, onImportError, cancelAsked = unpack(redis.call('HMGET', batch, 'status', 'total', 'on_import_error', 'cancel_requested'))
if FINAL_STATUS[batchStatus] and done >= tonumber(total or '0') and judging <= 0 then
  local final = FINAL_STATUS[batchStatus]
  redis.call('HSET', batch, 'status', final, final .. '_at', now)
  batchEvent(KEYS[12], batch, A.batch, final, now)
  for _, key in ipairs({ batch, KEYS[6], KEYS[7], KEYS[8], KEYS[10] }) do redis.call('EXPIRE', key, ttl) end
end
if not head then return { 'grading_head', gradingHead, 'outcome', 'ok', 'next_head', '', 'handed', 0, 'wait_ms', 0 } end
-- The next head goes on in the serving job, claimed here; or to a new job. A turn gap (gap_ms) after this call is
-- waited out as a delayed job, not before then.
local serving = A.serving_job or ''
-- While another project has heads waiting here, a lane of a project at or over its share of the worker's slots does
-- not keep its slot past this turn if anything waits (projects share the slots turn by turn: admission.lua).
if serving ~= '' and string.sub(serving, 1, 1) ~= '?' and not A.within_share then
  local project = f.project or 'default'
  for _, p in ipairs(redis.call('SMEMBERS', KEY.queuedProjects(prefix))) do
    if p ~= project then
      serving = '?' .. serving
      break
    end
  end
end
if string.sub(serving, 1, 1) == '?' then
  local waiting = redis.call('LLEN', KEYS[16]) + redis.call('ZCARD', KEYS[17])
  serving = waiting == 0 and string.sub(serving, 2) or ''
end
if serving ~= '' then
  local claim = claimRequest(prefix, head, now, { job = serving, batch = A.batch, budgeted = budgetKnown and (budgeted and 1 or 0) or nil, status = cancelAsked and 'cancelling' or batchStatus, onImportError = onImportError }, A.lease_ms)
  if claim[1] == 'run' then return { 'grading_head', gradingHead, 'outcome', 'ok', 'next_head', head, 'handed', 1, 'wait_ms', 0, 'claim', claim } end
  return { 'grading_head', gradingHead, 'outcome', 'ok', 'next_head', head, 'handed', 0, 'wait_ms', claim[1] == 'wait' and claim[2] or 0 }
end
local gap, headProject = unpack(redis.call('HMGET', KEY.request(prefix, head), 'gap_ms', 'project'))
gap = tonumber(gap or '0') or 0
if gap > 0 then
  -- A turn gap is the user's own pace, not a share of the queue: its delayed job is not held back.
  redis.call('HSET', KEY.request(prefix, head), 'not_before', tonumber(now) + gap)
  return { 'grading_head', gradingHead, 'outcome', 'ok', 'next_head', head, 'handed', 0, 'wait_ms', gap }
end
-- Within its project's share of the queue, else it waits in the project's backlog (admission.lua).
local admitted = admit(prefix, headProject or 'default', { head }, tonumber(now), admissionOf(A.admission))
return { 'grading_head', gradingHead, 'outcome', 'ok', 'next_head', admitted[1] or '', 'handed', 0, 'wait_ms', 0 }

