--[[
  Moves one day's usage aggregate into its month, at once: a day past the retention is counted in its month exactly
  once, whatever crashes around it.
  Its contract (keys, arguments, reply) is rollUpScript's in usage-retention.ts.
]]
--- @include contract
if not string.match(A.day, '^%d%d%d%d%-%d%d%-%d%d$') or string.sub(A.day, 1, 7) ~= A.month then
  error('chatq roll-up-day: bad arguments')
end
local fields = redis.call('HGETALL', K.day)
for i = 1, #fields, 2 do redis.call('HINCRBY', K.month, fields[i], fields[i + 1]) end
if #fields > 0 then redis.call('ZADD', K.month_index, A.now, A.month) end
redis.call('DEL', K.day)
redis.call('ZREM', K.day_index, A.day)
return reply({ fields = #fields / 2 })
