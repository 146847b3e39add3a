--[[
  Claims a request for one run (one or more upstream calls). A finished request is not run again (a double add is
  harmless). A claim is not an attempt: `claims` counts runs begun, `attempts` the upstream calls (written when
  the run ends), `tries` the failed attempts that count toward the attempt limit.
  KEYS: 1 request hash (its body is the string beside it, <request key>:body)
  ARGV: 1 now (ms), 2 key prefix (to read the previous turn of a "full" history script, same slot)
  Returns {'run', body, userid, model, history, conversation so far, attempt number (tries + 1), batch, on_failure,
           expect, project, 1 when the batch has a budget (max_cost_nano) else 0} or {'finished'} / {'missing'}.
]]
local status, userid, model, history, prev, batch, onFailure, expect, tries, project =
  unpack(redis.call('HMGET', KEYS[1], 'status', 'userid', 'model', 'history', 'prev', 'batch', 'on_failure', 'expect', 'tries', 'project'))
if not status then return { 'missing' } end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' or status == 'skipped' then
  return { 'finished' }
end
redis.call('HINCRBY', KEYS[1], 'claims', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
local conv = ''
if history == 'full' and prev then
  conv = redis.call('HGET', ARGV[2] .. ':req:' .. prev, 'conv') or ''
end
local budgeted = redis.call('HEXISTS', ARGV[2] .. ':batch:' .. batch, 'max_cost_nano')
return { 'run', redis.call('GET', KEYS[1] .. ':body') or '{}', userid, model, history or 'memory', conv, (tonumber(tries) or 0) + 1, batch, onFailure or 'continue', expect or '', project or 'default', budgeted }
