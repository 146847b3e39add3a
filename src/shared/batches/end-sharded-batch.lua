--[[
  Ends a sharded batch whose parts have all ended (sharded-batch.ts): writes its final status and its parts' summed
  counters, and records its event. A batch that is not at work (ended already, or still importing) is left alone,
  so the event is recorded once however many callers see the parts end.
  Its contract (keys, arguments, reply) is endScript's in sharded-batch.ts.
]]
--- @include events
--- @include contract
local batch = K.batch
local status = redis.call('HGET', batch, 'status')
if status ~= 'in_progress' and status ~= 'cancelling' and status ~= 'expiring' then
  if status ~= 'validating' then redis.call('SREM', K.open, A.batch_id) end
  return reply({ status = status or 'missing' })
end
local final = A.status
if not ENDS_WITH_REQUESTS[final] then error('chatq end-sharded-batch: bad status') end
local counters = {}
for field, value in pairs(A.counters) do
  counters[#counters + 1] = field
  counters[#counters + 1] = value
end
if #counters > 0 then redis.call('HSET', batch, unpack(counters)) end
local now = wholeText(A.now)
redis.call('HSET', batch, 'status', final, final .. '_at', now)
batchEvent(K.events, batch, A.batch_id, final, now)
redis.call('EXPIRE', batch, A.ttl_s)
redis.call('SREM', K.open, A.batch_id)
return reply({ status = final })
