--[[
  Reserves the most a call can cost against its batch's budget (max_cost_nano), before the call: a call goes only if
  what the batch has spent, plus what the calls in flight have reserved, plus this call's bound stays within the
  budget. finish-request.lua turns the reservation into spent cost (requeue-request.lua drops it), atomically.
  A reservation is kept per request, so a run that died is replaced by the next run of the same request.
  KEYS: 1 batch hash, 2 batch usage hash (cost_nano spent), 3 the batch's reservations (request id -> nano-USD)
  ARGV: 1 request id, 2 this call's bound (nano-USD)
  Returns 1 (reserved, or the batch has no budget), 0 (not now: calls in flight may leave room), -1 (never: even
  alone this call could exceed what is left).
]]
local bound = tonumber(ARGV[2])
if not bound or bound < 0 or bound ~= math.floor(bound) then error('chatq reserve-budget: the bound must be whole nano-USD') end
local max = tonumber(redis.call('HGET', KEYS[1], 'max_cost_nano') or '')
if not max then return 1 end
local spent = tonumber(redis.call('HGET', KEYS[2], 'cost_nano') or '0')
if spent + bound > max then return -1 end
local reserved = 0
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then reserved = reserved + tonumber(all[i + 1]) end
end
if spent + reserved + bound > max then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], bound)
return 1
