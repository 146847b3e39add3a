--[[
  Puts a running request back to waiting, at its lane's head: after a failed attempt that will be retried
  ("retrying": counts one try), or without a counted attempt ("queued": the queue was paused before it could go).
  Drops the run's budget reservation. With a time (defer_until), it waits in its project's backlog until then
  (admission.lua): its job ends, and a refill of the backlog adds one again; without, its job waits in BullMQ.
  Its contract (keys, arguments, reply) is requeueScript's in store-scripts.ts.
]]
--- @include attempt-log
--- @include contract
if A.status ~= 'retrying' and A.status ~= 'queued' then error('chatq requeue-request: bad status') end
local status, claims = unpack(redis.call('HMGET', K.request, 'status', 'claims'))
if status ~= 'running' then return reply({ status = status or 'missing' }) end
if tonumber(claims) ~= A.claim then return reply({ status = 'taken' }) end
-- This run's call has ended (or was never sent): its lease goes.
if not A.keep_lease and redis.call('GET', K.lease) == A.id .. ':' .. wholeText(A.claim) then redis.call('DEL', K.lease) end
-- Since when it waits again (Redis time): the next run's trace shows the wait (a backoff, a pause).
local t = redis.call('TIME')
redis.call('HSET', K.request, 'status', A.status, 'requeued_at', t[1] * 1000 + math.floor(t[2] / 1000))
if A.defer_until then
  redis.call('ZADD', K.backlog, A.defer_until, A.id)
  redis.call('SADD', K.projects, A.project)
end
redis.call('HDEL', K.reservations, A.id)
if A.status == 'retrying' then redis.call('HINCRBY', K.request, 'tries', 1) end
if A.error then redis.call('HSET', K.request, 'error', A.error) end
if A.entries ~= '' then
  redis.call('HSET', K.request, 'attempt_log', appendAttempts(redis.call('HGET', K.request, 'attempt_log'), A.entries))
end
if A.calls > 0 then redis.call('HINCRBY', K.request, 'attempts', A.calls) end
return reply({ status = A.status })
