--[[
  Claims a request for one upstream call. A finished request is not run again (a double add is harmless).
  KEYS: 1 request hash
  ARGV: 1 now (ms), 2 key prefix (to read the previous turn of a "full" history script, same slot)
  Returns {'run', body, userid, model, history, conversation so far, attempt number, batch, on_failure, expect}
       or {'finished'} / {'missing'}.
]]
local f = redis.call('HMGET', KEYS[1], 'status', 'body', 'userid', 'model', 'history', 'prev', 'batch', 'on_failure', 'expect')
local status = f[1]
if not status then return { 'missing' } end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' or status == 'skipped' then
  return { 'finished' }
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
local conv = ''
if f[5] == 'full' and f[6] then
  conv = redis.call('HGET', ARGV[2] .. ':req:' .. f[6], 'conv') or ''
end
return { 'run', f[2], f[3], f[4], f[5] or 'memory', conv, attempt, f[7], f[8] or 'continue', f[9] or '' }
