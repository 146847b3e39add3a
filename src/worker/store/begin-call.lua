--[[
  Takes the user's call lease, just before a call is sent: "<request id>:<claim>", expiring at the call's deadline
  (Redis's TIME + the call timeout) plus a margin for clocks and aborts. While it stands no other call of the user
  starts (claim-request.lua waits it out), whatever becomes of this worker's lock or its link to Redis; the run that
  holds it clears it when its call has ended (finish-request.lua, requeue-request.lua). Only the run that claimed the
  request last may take it: a worker whose claim was taken over (its lock lapsed) does not call.
  KEYS: 1 the request hash, 2 the user's call lease
  ARGV: 1 the run's claim number (the request's `claims` when it was claimed), 2 the call timeout (ms), 3 the margin
        (ms), 4 the request id
  Returns {1} when the call may go, {0, status} when this run no longer holds the request.
]]
local claim, timeout, margin = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for _, v in ipairs({ claim, timeout, margin }) do
  if not v or v < 0 or v ~= math.floor(v) then error('chatq begin-call: arguments must be whole numbers') end
end
if timeout < 1 then error('chatq begin-call: the timeout must be positive') end
local status, claims = unpack(redis.call('HMGET', KEYS[1], 'status', 'claims'))
if status ~= 'running' or tonumber(claims) ~= claim then return { 0, status or 'missing' } end
local holder = redis.call('GET', KEYS[2])
local mine = ARGV[4] .. ':' .. claim
-- Another run's call may still be at the upstream (a claim raced it): this one does not call.
if holder and holder ~= mine then return { 0, 'leased' } end
redis.call('SET', KEYS[2], mine, 'PX', timeout + margin)
return { 1 }
