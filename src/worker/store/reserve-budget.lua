--[[
  Reserves the most a call can cost against its batch's budget (max_cost_nano), before the call: a call goes only if
  what the batch has spent, plus what the calls in flight have reserved, plus this call's bound stays within the
  budget. finish-request.lua turns the reservation into spent cost (requeue-request.lua drops it), atomically.
  A reservation is kept per request, so a run that died is replaced by the next run of the same request.
  Its contract (keys, arguments, reply) is reserveScript's in store-scripts.ts.
]]
--- @include contract
local max = tonumber(redis.call('HGET', K.batch, 'max_cost_nano') or '')
if not max then return reply({ outcome = 'reserved' }) end
local spent = tonumber(redis.call('HGET', K.batch_usage, 'cost_nano') or '0')
if spent + A.bound > max then return reply({ outcome = 'never' }) end
local reserved = 0
local all = redis.call('HGETALL', K.reservations)
for i = 1, #all, 2 do
  if all[i] ~= A.id then reserved = reserved + tonumber(all[i + 1]) end
end
if spent + reserved + A.bound > max then return reply({ outcome = 'wait' }) end
redis.call('HSET', K.reservations, A.id, wholeText(A.bound))
return reply({ outcome = 'reserved' })
