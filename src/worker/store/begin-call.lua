--[[
  Takes the user's call lease, just before a call is sent: "<request id>:<claim>", expiring at the call's deadline
  (Redis's TIME + the call timeout) plus a margin for clocks and aborts. While it stands no other call of the user
  starts (claim-request.lua waits it out), whatever becomes of this worker's lock or its link to Redis; the run that
  holds it clears it when its call has ended (finish-request.lua, requeue-request.lua). Only the run that claimed the
  request last may take it: a worker whose claim was taken over (its lock lapsed) does not call.
  Its contract (keys, arguments, reply) is beginCallScript's in store-scripts.ts.
]]
--- @include contract
if A.timeout_ms < 1 then error('chatq begin-call: the timeout must be positive') end
local status, claims = unpack(redis.call('HMGET', K.request, 'status', 'claims'))
if status ~= 'running' or tonumber(claims) ~= A.claim then return reply({ go = false, reason = status or 'missing' }) end
local holder = redis.call('GET', K.lease)
local mine = A.id .. ':' .. wholeText(A.claim)
-- Another run's call may still be at the upstream (a claim raced it): this one does not call.
if holder and holder ~= mine then return reply({ go = false, reason = 'leased' }) end
redis.call('SET', K.lease, mine, 'PX', A.timeout_ms + A.margin_ms)
return reply({ go = true })
