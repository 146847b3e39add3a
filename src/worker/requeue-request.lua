--[[
  Puts a running request back to waiting, at its lane's head: after a failed attempt that will be retried
  ("retrying": counts one try), or without a counted attempt ("queued": the queue was paused before it could go).
  Drops the run's budget reservation. Its job waits in BullMQ again: it counts among its project's queued heads
  (admission.lua) until it is claimed again.
  KEYS: 1 request hash, 2 the batch's budget reservations, 3 the user's call lease (released when this run holds it),
        4 its project's queued heads
  ARGV: 1 attempt entries of this run (JSON array text without brackets, or ""), 2 upstream calls made in this run,
        3 last error (JSON, or "" to keep), 4 new status ("retrying" | "queued"), 5 request id, 6 the run's claim
        number: a run taken over since (another claimed the request) changes nothing, 7 "1" when the run's call may
        still be running at the upstream (it timed out, or its connection broke): its lease stands until its deadline
        and margin, so that no call of the user starts before then
]]
local calls = tonumber(ARGV[2])
if not calls or calls < 0 or calls ~= math.floor(calls) then error('chatq requeue-request: calls must be an integer') end
if ARGV[4] ~= 'retrying' and ARGV[4] ~= 'queued' then error('chatq requeue-request: bad status') end
if not tonumber(ARGV[6]) then error('chatq requeue-request: bad claim number') end
local status, claims = unpack(redis.call('HMGET', KEYS[1], 'status', 'claims'))
if status ~= 'running' then return status or 'missing' end
if tonumber(claims) ~= tonumber(ARGV[6]) then return 'taken' end
-- This run's call has ended (or was never sent): its lease goes.
if ARGV[7] ~= '1' and redis.call('GET', KEYS[3]) == ARGV[5] .. ':' .. ARGV[6] then redis.call('DEL', KEYS[3]) end
-- Since when it waits again (Redis time): the next run's trace shows the wait (a backoff, a pause).
local t = redis.call('TIME')
local nowMs = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'requeued_at', nowMs)
redis.call('ZADD', KEYS[4], nowMs, ARGV[5])
redis.call('HDEL', KEYS[2], ARGV[5])
if ARGV[4] == 'retrying' then redis.call('HINCRBY', KEYS[1], 'tries', 1) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
if ARGV[1] ~= '' then
  local log = redis.call('HGET', KEYS[1], 'attempt_log')
  redis.call('HSET', KEYS[1], 'attempt_log', (log and (string.sub(log, 1, -2) .. ',') or '[') .. ARGV[1] .. ']')
end
if calls > 0 then redis.call('HINCRBY', KEYS[1], 'attempts', calls) end
return ARGV[4]
