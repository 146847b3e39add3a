--[[
  Claims the request a job serves for one run (one or more upstream calls). A job serves its own request, or, once
  that is finished, the head of the same lane when finish-request.lua handed it over (served_by = this job): a lane
  goes on in the job that served it, without a new BullMQ job per turn. A finished request is not run again (a
  double add is harmless). A claim is not an attempt: `claims` counts runs begun, `attempts` the upstream calls
  (written when the run ends), `tries` the failed attempts that count toward the attempt limit.
  KEYS: 1 the job's own request hash (its body is the string beside it, <request key>:body)
  ARGV: 1 now (ms), 2 key prefix (the lane, a handed-over head, the previous turn of a "full" history script: same
        slot), 3 the job id
  Returns {'run', request id, body, userid, model, history, conversation so far, attempt number (tries + 1), batch,
           on_failure, expect, project, 1 when the batch has a budget (max_cost_nano) else 0}
       or {'wait', ms} (a turn gap: not before then; nothing claimed) or {'finished'} / {'missing'}.
]]
--- @include keys
--- @include served-request
local prefix = ARGV[2]
local id, gone = servedRequest(prefix, ARGV[3])
if not id then return { gone or 'finished' } end
local key = KEY.request(prefix, id)
local notBefore = tonumber(redis.call('HGET', key, 'not_before') or '')
if notBefore and notBefore > tonumber(ARGV[1]) then return { 'wait', notBefore - tonumber(ARGV[1]) } end
local userid, model, history, prev, batch, onFailure, expect, tries, project =
  unpack(redis.call('HMGET', key, 'userid', 'model', 'history', 'prev', 'batch', 'on_failure', 'expect', 'tries', 'project'))
redis.call('HINCRBY', key, 'claims', 1)
redis.call('HSET', key, 'status', 'running', 'started_at', ARGV[1])
local conv = ''
if history == 'full' and prev then
  conv = redis.call('HGET', KEY.request(prefix, prev), 'conv') or ''
end
local budgeted = redis.call('HEXISTS', KEY.batch(prefix, batch), 'max_cost_nano')
return { 'run', id, redis.call('GET', KEY.requestBody(prefix, id)) or '{}', userid, model, history or 'memory', conv, (tonumber(tries) or 0) + 1, batch, onFailure or 'continue', expect or '', project or 'default', budgeted }
