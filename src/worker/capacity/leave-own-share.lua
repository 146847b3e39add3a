--[[
  A worker that went on its own share of the RPM limit while the base tag's master was out of reach (local-share.ts)
  reaches it again. Every such worker goes back to the global limit at one moment, the first one's answer plus
  A.switch_ms (K.returning holds it; each worker stays on its own share until then), so that the request slots go on
  from the workers' own spacing to the global one without an overlap. Answers in how many ms the switch is.
  Its contract (keys, arguments, reply) is leaveOwnShareScript's in acquire-call.ts.
]]
--- @include contract
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('SET', K.returning, now + A.switch_ms, 'NX', 'PX', A.switch_ms * 2)
local switchAt = tonumber(redis.call('GET', K.returning)) or now
return reply({ switch_in_ms = math.max(0, switchAt - now) })
