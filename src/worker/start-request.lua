--[[
  Claims a request for one upstream call. A finished request is not run again (a double add is harmless).
  KEYS: 1 request hash (its body is the string beside it, <request key>:body)
  ARGV: 1 now (ms), 2 key prefix (to read the previous turn of a "full" history script, same slot)
  Returns {'run', body, userid, model, history, conversation so far, attempt number, batch, on_failure, expect}
       or {'finished'} / {'missing'}.
]]
local status, userid, model, history, prev, batch, onFailure, expect =
  unpack(redis.call('HMGET', KEYS[1], 'status', 'userid', 'model', 'history', 'prev', 'batch', 'on_failure', 'expect'))
if not status then return { 'missing' } end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' or status == 'skipped' then
  return { 'finished' }
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
local conv = ''
if history == 'full' and prev then
  conv = redis.call('HGET', ARGV[2] .. ':req:' .. prev, 'conv') or ''
end
return { 'run', redis.call('GET', KEYS[1] .. ':body') or '{}', userid, model, history or 'memory', conv, attempt, batch, onFailure or 'continue', expect or '' }
