--[[
  Closes a batch's input: its total is now known. A batch whose requests all finished already completes here.
  KEYS: 1 batch hash, 2 batch request list, 3 batch custom_id hash, 4 batch error list, 5 batch index
  ARGV: 1 now (ms), 2 rejected line count, 3 ttl (s) applied once the batch is complete
  Also drops from the batch index (KEYS[5]) the batches whose records have expired.
  Returns the batch status.
]]
local b = KEYS[1]
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', tonumber(ARGV[1]) - 2 * tonumber(ARGV[3]) * 1000)
local enqueued = tonumber(redis.call('HGET', b, 'enqueued') or '0')
redis.call('HSET', b, 'total', enqueued, 'rejected_lines', ARGV[2], 'in_progress_at', ARGV[1])
local status = redis.call('HGET', b, 'status')
if status == 'validating' then
  status = 'in_progress'
  local done = tonumber(redis.call('HGET', b, 'done') or '0')
  if done >= enqueued then
    status = 'completed'
    redis.call('HSET', b, 'completed_at', ARGV[1])
    for k = 1, 4 do redis.call('EXPIRE', KEYS[k], ARGV[3]) end
  end
  redis.call('HSET', b, 'status', status)
end
return status
