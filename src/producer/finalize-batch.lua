--[[
  Closes a batch's input: its total is now known. A batch whose requests all finished already completes here
  (is cancelled, when a cancel was asked while it was imported).
  Its contract (keys, arguments, reply) is finalizeScript's in import-end.ts.
  Also drops from the batch index the batches whose records have expired.
]]
--- @include events
--- @include contract
local b = K.batch
local now, ttl = A.now, A.ttl_s
redis.call('ZREMRANGEBYSCORE', K.batch_index, '-inf', now - 2 * ttl * 1000)
redis.call('SREM', K.importing, A.batch_id)
redis.call('DEL', K.importer, K.reserve)
local status = redis.call('HGET', b, 'status')
if status ~= 'validating' then return reply({ status = status or 'missing' }) end
local enqueued = tonumber(redis.call('HGET', b, 'enqueued') or '0')
now = wholeText(now)
redis.call('HSET', b, 'total', enqueued, 'rejected_lines', A.rejected_lines, 'in_progress_at', now)
status = 'in_progress'
local done = tonumber(redis.call('HGET', b, 'done') or '0')
-- Its gradings (expect.judge) are written before it ends: the last one's finish ends it then.
if done >= enqueued and tonumber(redis.call('HGET', b, 'judging') or '0') <= 0 then
  -- Nothing left to run: a cancel asked while it was imported ends it cancelled.
  status = redis.call('HEXISTS', b, 'cancel_requested') == 1 and 'cancelled' or 'completed'
  redis.call('HSET', b, status .. '_at', now)
  batchEvent(K.events, b, A.batch_id, status, now)
  for _, key in ipairs({ b, K.batch_requests, K.batch_custom_ids, K.batch_errors }) do redis.call('EXPIRE', key, ttl) end
end
redis.call('HSET', b, 'status', status)
return reply({ status = status })
