--[[
  Ends a sharded batch whose parts have all ended (sharded-batch.ts): writes its final status and its parts' summed
  counters, and records its event. A batch that is not at work (ended already, or still importing) is left alone,
  so the event is recorded once however many callers see the parts end.
  KEYS: 1 batch hash, 2 batch events, 3 open sharded batches (it leaves them)
  ARGV: 1 batch id, 2 final status (completed | cancelled | expired), 3 now (ms), 4 ttl (s), 5 counters (JSON array:
        field, value, ...)
  Returns the batch status afterwards.
]]
--- @include events
local batch = KEYS[1]
local status = redis.call('HGET', batch, 'status')
if status ~= 'in_progress' and status ~= 'cancelling' and status ~= 'expiring' then
  if status ~= 'validating' then redis.call('SREM', KEYS[3], ARGV[1]) end
  return status or 'missing'
end
local final = ARGV[2]
if not ENDS_WITH_REQUESTS[final] then error('chatq end-sharded-batch: bad status') end
if not tonumber(ARGV[3]) or not tonumber(ARGV[4]) then error('chatq end-sharded-batch: bad arguments') end
local counters = cjson.decode(ARGV[5])
if #counters > 0 then redis.call('HSET', batch, unpack(counters)) end
redis.call('HSET', batch, 'status', final, final .. '_at', ARGV[3])
batchEvent(KEYS[2], batch, ARGV[1], final, ARGV[3])
redis.call('EXPIRE', batch, tonumber(ARGV[4]))
redis.call('SREM', KEYS[3], ARGV[1])
return final
