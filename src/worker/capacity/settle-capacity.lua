--[[
  Replaces a call's estimated tokens with the real usage in the token logs it was charged to.
  Its contract (keys, arguments) is settleScript's in acquire-call.ts: each scope's token log (K.<scope>_log) and the
  log's amounts (K.<scope>_amounts), and the scopes the call was charged in.
  The running sums change with it: the minute's, and the last sixth's while the call is still in it.
]]
--- @include contract
if A.tokens > 1e12 then error('chatq settle-capacity: tokens must be at most 1e12') end
for _, scope in ipairs(A.scopes) do
  local log, amounts = K[scope .. '_log'], K[scope .. '_amounts']
  if not log then error('chatq settle-capacity: scope ' .. tostring(scope) .. ' is not one of the contract\'s') end
  local old = tonumber(redis.call('HGET', amounts, A.member) or '')
  if old then
    redis.call('HSET', amounts, A.member, A.tokens)
    redis.call('HINCRBY', amounts, '__total', A.tokens - old)
    local at = tonumber(redis.call('ZSCORE', log, A.member) or '')
    local from = tonumber(redis.call('HGET', amounts, '__recent_from') or '')
    if at and from and at >= from then redis.call('HINCRBY', amounts, '__recent', A.tokens - old) end
  end
end
return reply({})
