--[[
  Cancels the not-yet-running requests of one page of a batch (call it page after page). A cancelled request
  leaves its lane; when it was the lane's head, the next head is returned for the caller to add to BullMQ.
  Requests already running finish normally; the batch turns "cancelled" when its last request is done.
  KEYS: 1 batch hash, 2 lane set, 3 batch request list, 4 batch custom_id hash, 5 batch error list
  ARGV: 1 now, 2 ttl (s), 3 key prefix, 4 first index, 5 page size, 6 error (JSON)
  Returns {batch status, new lane heads, ids read}.
]]
local batch = KEYS[1]
local now, ttl, prefix = ARGV[1], ARGV[2], ARGV[3]
local status = redis.call('HGET', batch, 'status')
if status == 'validating' then
  -- Still being imported: the producer cancels it as soon as its requests are all enqueued.
  redis.call('HSET', batch, 'cancel_requested', now)
  return { status, {}, 0 }
end
if status ~= 'in_progress' and status ~= 'cancelling' then return { status or 'missing', {}, 0 } end
if status == 'in_progress' then
  redis.call('HSET', batch, 'status', 'cancelling', 'cancelling_at', now)
end
local ids = redis.call('LRANGE', KEYS[3], tonumber(ARGV[4]), tonumber(ARGV[4]) + tonumber(ARGV[5]) - 1)
local heads, cancelled = {}, 0
for _, id in ipairs(ids) do
  local key = prefix .. ':req:' .. id
  local f = redis.call('HMGET', key, 'status', 'userid')
  if f[1] == 'queued' or f[1] == 'retrying' then
    local lane = prefix .. ':lane:' .. f[2]
    local wasHead = redis.call('LINDEX', lane, 0) == id
    redis.call('LREM', lane, 1, id)
    redis.call('HSET', key, 'status', 'cancelled', 'finished_at', now, 'error', ARGV[6])
    redis.call('EXPIRE', key, ttl)
    redis.call('EXPIRE', key .. ':body', ttl)
    cancelled = cancelled + 1
    if wasHead then
      local nextHead = redis.call('LINDEX', lane, 0)
      if nextHead then heads[#heads + 1] = nextHead else redis.call('SREM', KEYS[2], f[2]) end
    end
  end
end
local done = tonumber(redis.call('HGET', batch, 'done') or '0')
if cancelled > 0 then
  redis.call('HINCRBY', batch, 'cancelled', cancelled)
  done = redis.call('HINCRBY', batch, 'done', cancelled)
end
if done >= tonumber(redis.call('HGET', batch, 'total') or '0') then
  redis.call('HSET', batch, 'status', 'cancelled', 'cancelled_at', now)
  for k = 1, 5 do if k ~= 2 then redis.call('EXPIRE', KEYS[k], ttl) end end
  status = 'cancelled'
else
  status = 'cancelling'
end
return { status, heads, #ids }
