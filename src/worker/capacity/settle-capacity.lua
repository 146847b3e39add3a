--[[
  Replaces a call's estimated tokens with the real usage in the token logs it was charged to.
  KEYS: per scope (global, then model when it has its own limit): token log, token amount hash
  ARGV: 1 member, 2 real tokens (an integer, checked before any write)
  The running sums change with it: the minute's, and the last sixth's while the call is still in it.
]]
local real = tonumber(ARGV[2])
if not real or real < 0 or real > 1e12 or real ~= math.floor(real) then error('chatq settle-capacity: tokens must be an integer') end
for i = 1, #KEYS, 2 do
  local log, amounts = KEYS[i], KEYS[i + 1]
  local old = tonumber(redis.call('HGET', amounts, ARGV[1]) or '')
  if old then
    redis.call('HSET', amounts, ARGV[1], real)
    redis.call('HINCRBY', amounts, '__total', real - old)
    local at = tonumber(redis.call('ZSCORE', log, ARGV[1]) or '')
    local from = tonumber(redis.call('HGET', amounts, '__recent_from') or '')
    if at and from and at >= from then redis.call('HINCRBY', amounts, '__recent', real - old) end
  end
end
return 0
