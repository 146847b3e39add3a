--[[
  A worker that went on its own share of the RPM/TPM limits while the base tag's master was out of reach
  (local-share.ts) reaches it again. Every such worker goes back to the global limit at one moment, the first one's
  answer plus A.switch_ms (K.returning holds it; each worker stays on its own share until then), so that the request
  slots go on from the workers' own spacing to the global one without an overlap. The tokens of the worker's own calls
  (A.entries: member, ms ago, tokens) go into the global token log (K.log, K.amounts) first, as acquire-capacity.lua
  would have logged them, so that the global limit counts them from the switch on. Answers in how many ms the switch is.
  Its contract (keys, arguments, reply) is leaveOwnShareScript's in acquire-call.ts.
]]
--- @include contract
if #A.entries > 100000 then error('chatq leave-own-share: at most 100000 entries') end
for i, e in ipairs(A.entries) do
  if type(e.member) ~= 'string' or type(e.ago_ms) ~= 'number' or type(e.tokens) ~= 'number' or e.tokens < 0 or e.tokens > 1e12 or e.tokens % 1 ~= 0 then
    error('chatq leave-own-share: entry ' .. i .. ' needs a member, ago_ms and whole tokens')
  end
end
if A.window_ms < 1 then error('chatq leave-own-share: window_ms must be at least 1') end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local recentFrom = tonumber(redis.call('HGET', K.amounts, '__recent_from') or '')
for _, e in ipairs(A.entries) do
  local at = now - e.ago_ms
  if at > now - A.window_ms and not redis.call('HGET', K.amounts, e.member) then
    redis.call('ZADD', K.log, at, e.member)
    redis.call('HSET', K.amounts, e.member, e.tokens)
    redis.call('HINCRBY', K.amounts, '__total', e.tokens)
    if recentFrom and at >= recentFrom then redis.call('HINCRBY', K.amounts, '__recent', e.tokens) end
  end
end
if #A.entries > 0 then
  redis.call('PEXPIRE', K.log, math.ceil(3 * A.window_ms))
  redis.call('PEXPIRE', K.amounts, math.ceil(3 * A.window_ms))
end
redis.call('SET', K.returning, now + A.switch_ms, 'NX', 'PX', A.switch_ms * 2)
local switchAt = tonumber(redis.call('GET', K.returning)) or now
return reply({ switch_in_ms = math.max(0, switchAt - now) })
