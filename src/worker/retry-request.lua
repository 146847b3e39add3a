--[[
  Records a failed attempt that will be retried: the request goes back to waiting, at its lane's head.
  KEYS: 1 request hash
  ARGV: 1 attempt entries (JSON array text without brackets), 2 upstream calls beyond the first, 3 last error (JSON)
]]
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status or 'missing' end
local log = redis.call('HGET', KEYS[1], 'attempt_log')
redis.call('HSET', KEYS[1], 'status', 'retrying', 'error', ARGV[3],
  'attempt_log', (log and (string.sub(log, 1, -2) .. ',') or '[') .. ARGV[1] .. ']')
if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[1], 'attempts', ARGV[2]) end
return 'retrying'
