--[[
  Puts a running request back to waiting, at its lane's head: after a failed attempt that will be retried
  ("retrying": counts one try), or without a counted attempt ("queued": the queue was paused before it could go).
  Drops the run's budget reservation. With a time (ARGV[8]), it waits in its project's backlog until then
  (admission.lua): its job ends, and a refill of the backlog adds one again; without, its job waits in BullMQ.
  KEYS: 1 request hash, 2 the batch's budget reservations, 3 the user's call lease (released when this run holds it),
        4 its project's backlog, 5 the projects with heads queued or held back
  ARGV: 1 attempt entries of this run (JSON array text without brackets, or ""), 2 upstream calls made in this run,
        3 last error (JSON, or "" to keep), 4 new status ("retrying" | "queued"), 5 request id, 6 the run's claim
        number: a run taken over since (another claimed the request) changes nothing, 7 "1" when the run's call may
        still be running at the upstream (it timed out, or its connection broke): its lease stands until its deadline
        and margin, so that no call of the user starts before then, 8 when it may go again, into the backlog (ms;
        "": its job waits in BullMQ), 9 its project
]]
--- @include attempt-log
local calls = tonumber(ARGV[2])
if not calls or calls < 0 or calls ~= math.floor(calls) then error('chatq requeue-request: calls must be an integer') end
if ARGV[4] ~= 'retrying' and ARGV[4] ~= 'queued' then error('chatq requeue-request: bad status') end
if not tonumber(ARGV[6]) then error('chatq requeue-request: bad claim number') end
local deferUntil = ARGV[8] or ''
if deferUntil ~= '' and not tonumber(deferUntil) then error('chatq requeue-request: bad time to go again') end
local status, claims = unpack(redis.call('HMGET', KEYS[1], 'status', 'claims'))
if status ~= 'running' then return status or 'missing' end
if tonumber(claims) ~= tonumber(ARGV[6]) then return 'taken' end
-- This run's call has ended (or was never sent): its lease goes.
if ARGV[7] ~= '1' and redis.call('GET', KEYS[3]) == ARGV[5] .. ':' .. ARGV[6] then redis.call('DEL', KEYS[3]) end
-- Since when it waits again (Redis time): the next run's trace shows the wait (a backoff, a pause).
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'requeued_at', t[1] * 1000 + math.floor(t[2] / 1000))
if deferUntil ~= '' then
  redis.call('ZADD', KEYS[4], tonumber(deferUntil), ARGV[5])
  redis.call('SADD', KEYS[5], ARGV[9])
end
redis.call('HDEL', KEYS[2], ARGV[5])
if ARGV[4] == 'retrying' then redis.call('HINCRBY', KEYS[1], 'tries', 1) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], 'attempt_log', appendAttempts(redis.call('HGET', KEYS[1], 'attempt_log'), ARGV[1]))
end
if calls > 0 then redis.call('HINCRBY', KEYS[1], 'attempts', calls) end
return ARGV[4]
