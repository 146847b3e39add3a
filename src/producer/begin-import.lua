--[[
  Starts (or resumes) the import of a batch's input: takes the importer lease, sets memory aside for recording a
  failure, and, to resume, reopens the batch so that a re-run of the same file adds only the missing custom_ids.
  Its contract (keys, arguments, reply) is beginScript's in import-leases.ts. Answers status (the batch's before:
  "busy" when another process holds the lease, "missing" when it is gone, or one that cannot resume), and, when it
  began, seq (the highest request seq so far) and project.
]]
--- @include contract
local batch, lease = K.batch, K.importer
if A.reserve_bytes > 64 * 1024 * 1024 then error('chatq begin-import: bad reserve') end
if A.mode ~= 'new' and A.mode ~= 'resume' then error('chatq begin-import: bad mode') end
if A.on_import_error ~= 'cancel' and A.on_import_error ~= 'keep' then error('chatq begin-import: bad on_import_error') end
if A.lease_ms < 1 then error('chatq begin-import: bad lease') end
local status = redis.call('HGET', batch, 'status')
if not status then return reply({ status = 'missing' }) end
if redis.call('EXISTS', lease) == 1 then return reply({ status = 'busy' }) end
if A.mode == 'new' then
  if status ~= 'validating' then return reply({ status = status }) end
else
  if status == 'cancelled' or status == 'cancelling' then return reply({ status = status }) end
  redis.call('HSET', batch, 'status', 'validating')
  redis.call('HDEL', batch, 'import_error', 'failed_at', 'completed_at', 'total', 'cancel_requested')
  for _, k in ipairs({ batch, K.batch_requests, K.batch_custom_ids }) do redis.call('PERSIST', k) end
  redis.call('DEL', K.batch_errors)
  redis.call('SADD', K.importing, A.batch_id)
end
redis.call('HSET', batch, 'on_import_error', A.on_import_error)
redis.call('SET', lease, A.owner, 'PX', A.lease_ms)
if A.reserve_bytes > 0 then
  -- Allocated by Redis (zero bytes up to the offset), not built as a Lua string.
  redis.call('SETRANGE', K.reserve, A.reserve_bytes - 1, 'r')
  redis.call('PEXPIRE', K.reserve, A.lease_ms * 4)
end
return reply({ status = status, seq = tonumber(redis.call('HGET', batch, 'seq') or '0'), project = redis.call('HGET', batch, 'project') or 'default' })
