--[[
  Records that the upstream could not be reached and returns how long every worker backs off. The backoff grows
  with the outage's rounds, not with each failing call: calls that fail while a backoff is on (they left before
  it began) do not extend it. A successful call ends the outage (the caller deletes both keys).
  Its contract (keys, arguments, reply) is noteOutageScript's in capacity-limiter.ts.
]]
--- @include contract
local base, cap, jitter = A.base_ms, A.cap_ms, A.jitter
if base < 1 or cap < base or jitter < 0 or jitter > 1 then error('chatq note-outage: bad arguments') end
local left = redis.call('PTTL', K.outage_until)
if left > 0 then return reply({ wait_ms = left }) end
local round = redis.call('HINCRBY', K.outage, 'round', 1)
local ceiling = math.min(cap, base * 2 ^ math.min(round - 1, 30))
local wait = math.max(1, math.floor(ceiling / 2 + jitter * ceiling / 2))
redis.call('SET', K.outage_until, wait, 'PX', wait)
-- The record outlives a quiet spell of a few caps, then a new outage starts from the first round.
redis.call('PEXPIRE', K.outage, cap * 4)
return reply({ wait_ms = wait })
