--[[
  Replaces a call's estimated tokens with the real usage in the token logs it was charged to.
  KEYS: token amount hashes (global, then model when it has its own limit)
  ARGV: 1 member, 2 real tokens
]]
for _, amounts in ipairs(KEYS) do
  local old = tonumber(redis.call('HGET', amounts, ARGV[1]) or '')
  if old then
    redis.call('HSET', amounts, ARGV[1], ARGV[2])
    redis.call('HINCRBY', amounts, '__total', tonumber(ARGV[2]) - old)
  end
end
return 0
