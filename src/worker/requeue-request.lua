--[[
  Puts a running request back to waiting, at its lane's head: after a failed attempt that will be retried
  ("retrying"), or without a call at all ("queued": the queue was paused before it could go).
  KEYS: 1 request hash
  ARGV: 1 attempt entries (JSON array text without brackets, or ""), 2 change to the upstream call count,
        3 last error (JSON, or "" to keep), 4 new status
]]
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status or 'missing' end
redis.call('HSET', KEYS[1], 'status', ARGV[4])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
if ARGV[1] ~= '' then
  local log = redis.call('HGET', KEYS[1], 'attempt_log')
  redis.call('HSET', KEYS[1], 'attempt_log', (log and (string.sub(log, 1, -2) .. ',') or '[') .. ARGV[1] .. ']')
end
if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[1], 'attempts', ARGV[2]) end
return ARGV[4]
