--[[
  Moves one day's usage aggregate into its month, at once: a day past the retention is counted in its month exactly
  once, whatever crashes around it.
  KEYS: 1 day usage hash, 2 day index, 3 month usage hash, 4 month index
  ARGV: 1 day (YYYY-MM-DD), 2 month (YYYY-MM), 3 now (ms)
]]
if not string.match(ARGV[1], '^%d%d%d%d%-%d%d%-%d%d$') or string.sub(ARGV[1], 1, 7) ~= ARGV[2] or not tonumber(ARGV[3]) then
  error('chatq roll-up-day: bad arguments')
end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do redis.call('HINCRBY', KEYS[3], fields[i], fields[i + 1]) end
if #fields > 0 then redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2]) end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return #fields / 2
