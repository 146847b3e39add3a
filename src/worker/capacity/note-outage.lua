--[[
  Records that the upstream could not be reached and returns how long every worker backs off. The backoff grows
  with the outage's rounds, not with each failing call: calls that fail while a backoff is on (they left before
  it began) do not extend it. A successful call ends the outage (the caller deletes both keys).
  KEYS: 1 outage record (hash: round), 2 outage-until (expires when the backoff ends)
  ARGV: 1 base ms, 2 cap ms, 3 jitter in [0, 1]
  Returns the ms left of the backoff.
]]
local base, cap, jitter = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not base or base < 1 or not cap or cap < base or not jitter or jitter < 0 or jitter > 1 then
  error('chatq note-outage: bad arguments')
end
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return left end
local round = redis.call('HINCRBY', KEYS[1], 'round', 1)
local ceiling = math.min(cap, base * 2 ^ math.min(round - 1, 30))
local wait = math.max(1, math.floor(ceiling / 2 + jitter * ceiling / 2))
redis.call('SET', KEYS[2], wait, 'PX', wait)
-- The record outlives a quiet spell of a few caps, then a new outage starts from the first round.
redis.call('PEXPIRE', KEYS[1], cap * 4)
return wait
