--[[
  Replaces a call's estimated tokens with the real usage in the token logs it was charged to.
  KEYS: token amount hashes (global, then model when it has its own limit)
  ARGV: 1 member, 2 real tokens (an integer, checked before any write)
]]
local real = tonumber(ARGV[2])
if not real or real < 0 or real > 1e12 or real ~= math.floor(real) then error('chatq settle-capacity: tokens must be an integer') end
for _, amounts in ipairs(KEYS) do
  local old = tonumber(redis.call('HGET', amounts, ARGV[1]) or '')
  if old then
    redis.call('HSET', amounts, ARGV[1], real)
    redis.call('HINCRBY', amounts, '__total', real - old)
  end
end
return 0
