--[[
  Closes a batch's input: its total is now known. A batch whose requests all finished already completes here
  (is cancelled, when a cancel was asked while it was imported).
  KEYS: 1 batch hash, 2 batch request list, 3 batch custom_id hash, 4 batch error list, 5 batch index,
        6 importing set, 7 importer lease, 8 memory reserve, 9 batch events
  ARGV: 1 now (ms), 2 rejected line count, 3 ttl (s) applied once the batch is complete, 4 batch id
  Also drops from the batch index (KEYS[5]) the batches whose records have expired.
  Returns the batch status.
]]
--- @include events
local b = KEYS[1]
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[3])
if not now or not ttl or not tonumber(ARGV[2]) then error('chatq finalize-batch: bad arguments') end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - 2 * ttl * 1000)
redis.call('SREM', KEYS[6], ARGV[4])
redis.call('DEL', KEYS[7], KEYS[8])
local status = redis.call('HGET', b, 'status')
if status ~= 'validating' then return status or 'missing' end
local enqueued = tonumber(redis.call('HGET', b, 'enqueued') or '0')
redis.call('HSET', b, 'total', enqueued, 'rejected_lines', ARGV[2], 'in_progress_at', now)
status = 'in_progress'
local done = tonumber(redis.call('HGET', b, 'done') or '0')
-- Its gradings (expect.judge) are written before it ends: the last one's finish ends it then.
if done >= enqueued and tonumber(redis.call('HGET', b, 'judging') or '0') <= 0 then
  -- Nothing left to run: a cancel asked while it was imported ends it cancelled.
  status = redis.call('HEXISTS', b, 'cancel_requested') == 1 and 'cancelled' or 'completed'
  redis.call('HSET', b, status .. '_at', now)
  batchEvent(KEYS[9], b, ARGV[4], status, now)
  for k = 1, 4 do redis.call('EXPIRE', KEYS[k], ttl) end
end
redis.call('HSET', b, 'status', status)
return status
