--[[
  Included by scripts (--- @include claim-request): claims one request for a run. claimRequest(prefix, id, now, hand,
  leaseMs) answers a table by name (ClaimReply in request-claims.ts): state "run" with the run's request (id, body,
  userid, model, history, conv: the conversation so far, attempt: tries + 1, batch, on_failure, expect, project,
  budgeted: whether the batch has a budget (max_cost_nano), claim: the claim number (begin-call.lua checks it),
  traceparent of its import span, since: when it began to wait (ms: its last requeue, else its import), judges: what a
  grading judges (JSON text, GradingOf)); state "wait" with wait_ms when its turn gap has not passed or a call of its
  user may still be at the upstream (the user's call lease: begin-call.lua); state "stopped" with batch, status and id
  when its batch is being cancelled or expired or its import failed with on_import_error "cancel" (the caller cancels
  it with its batch); or state "missing" when its record is gone (nothing claimed in any of these; a stopped one left
  "running" by a run that never wrote its result is "queued" again, for the cancel). A claim is not an attempt:
  `claims` counts runs begun.
  `hand` is given by finish-request.lua when it hands a lane's next request to the job that served the previous one,
  which finished at `now`: {job = that job's id (the claim's served_by), batch = its batch, budgeted = true|false (whether
  that batch has a budget; nil: unknown), status and on_import_error of that batch (status "cancelling" once a cancel was asked
  while it is imported), leaseFree = true when the user's call lease is known to be free (the finishing run just
  released its own, or there was none)}. A turn gap (gap_ms) then starts now, and the
  request waits it out unclaimed. With `leaseMs` (the call's lease, ms: timeout and margin) the claim takes the user's
  call lease too (as begin-call.lua does): the job calls without another round trip.
  Needs "--- @include finished-record" before it (a "full" history turn reads the previous turn's record).
]]
-- A batch whose unsent requests are not to be sent: being cancelled or expired, or its import failed ("cancel").
local function batchStopped(status, onImportError)
  return status == 'cancelling' or status == 'cancelled' or status == 'expiring' or status == 'expired' or (status == 'failed' and onImportError ~= 'keep')
end

local MISSING = { state = 'missing' }

local function claimRequest(prefix, id, now, hand, leaseMs)
  local key = KEY.request(prefix, id)
  local userid, model, history, prev, batch, onFailure, expect, tries, project, notBefore, claims, gap, current, tp, createdAt, requeuedAt, judges =
    unpack(redis.call('HMGET', key, 'userid', 'model', 'history', 'prev', 'batch', 'on_failure', 'expect', 'tries', 'project', 'not_before', 'claims', 'gap_ms', 'status', 'traceparent', 'created_at', 'requeued_at', 'judges'))
  -- A record that is gone (expired, deleted, or moved away by a resharding: not a key the script declared) is not
  -- claimed. Everything a run needs is read before the first write, so a missing part leaves nothing half written.
  if not userid or not batch then return MISSING end
  gap = hand and tonumber(gap or '0') or 0
  if gap > 0 then
    redis.call('HSET', key, 'not_before', tonumber(now) + gap)
    return { state = 'wait', wait_ms = gap }
  end
  notBefore = tonumber(notBefore or '')
  if notBefore and notBefore > tonumber(now) then return { state = 'wait', wait_ms = notBefore - tonumber(now) } end
  local body = redis.call('GET', KEY.requestBody(prefix, id))
  if not body then return MISSING end
  local conv = ''
  if history == 'full' and prev then
    -- The previous turn is finished: its record.
    local earlier = finishedRecord(prefix, prev)
    if not earlier then return MISSING end
    conv = earlier[AT.conv] or ''
  end
  local sameBatch = hand and hand.batch == batch
  local budgeted
  if sameBatch then budgeted = hand.budgeted end
  local status, onImportError = sameBatch and hand.status, sameBatch and hand.onImportError
  if budgeted == nil then
    local maxCost, cancelAsked
    status, maxCost, onImportError, cancelAsked = unpack(redis.call('HMGET', KEY.batch(prefix, batch), 'status', 'max_cost_nano', 'on_import_error', 'cancel_requested'))
    if not status then return MISSING end
    budgeted = maxCost ~= false
    -- A cancel asked while the batch is still being imported stops its calls now (the import ends it).
    if cancelAsked then status = 'cancelling' end
  end
  -- A grading is not one of the batch's requests (no cancel walk finds it): its run ends it unjudged instead.
  if batchStopped(status, onImportError) and not judges then
    -- A run that ended without its result (a worker killed, Redis full) left it "running": it is unsent again.
    if current == 'running' then redis.call('HSET', key, 'status', 'queued') end
    return { state = 'stopped', batch = batch, status = status, id = id }
  end
  -- A call of this user may still be at the upstream (its run's lease stands: a worker killed, stalled or cut off
  -- from Redis while it called): nothing of the user starts until that call's deadline and a margin are past.
  local leaseLeft = hand and hand.leaseFree and 0 or redis.call('PTTL', KEY.laneLease(prefix, userid))
  if leaseLeft > 0 then return { state = 'wait', wait_ms = leaseLeft } end
  local claimNumber = (tonumber(claims) or 0) + 1
  local claim = { 'HSET', key, 'status', 'running', 'started_at', now, 'claims', claimNumber }
  if hand then
    claim[#claim + 1] = 'served_by'
    claim[#claim + 1] = hand.job
  end
  redis.call(unpack(claim))
  if leaseMs then redis.call('SET', KEY.laneLease(prefix, userid), id .. ':' .. claimNumber, 'PX', leaseMs) end
  return {
    state = 'run', id = id, body = body, userid = userid, model = model, history = history or 'memory', conv = conv,
    attempt = (tonumber(tries) or 0) + 1, batch = batch, on_failure = onFailure or 'continue', expect = expect or '',
    project = project or 'default', budgeted = budgeted, claim = claimNumber, traceparent = tp or '',
    since = tonumber(requeuedAt or createdAt or '') or 0, judges = judges or '',
  }
end
