--[[
  Ends an import that cannot finish: the batch turns "failed" with why it stopped and how many requests it had
  enqueued (OpenAI's batch "errors"). The requests already enqueued are then cancelled or kept, as the batch's
  on_import_error says (the caller cancels them page by page with cancel-batch.lua).
  Its contract (keys, arguments, reply) is failScript's in import-failure.ts.
  An import whose lease another process holds now (it lost the lease and the batch's import was resumed elsewhere)
  changes nothing: the answer is status "busy".
]]
--- @include events
--- @include contract
local batch = K.batch
local err = A.error
local holder = redis.call('GET', K.importer)
if holder and holder ~= A.owner then return reply({ status = 'busy', mode = redis.call('HGET', batch, 'on_import_error') or 'cancel' }) end
-- The reserve goes first: under a full Redis it is what makes room for the writes below.
redis.call('DEL', K.reserve)
local status = redis.call('HGET', batch, 'status')
local mode = redis.call('HGET', batch, 'on_import_error') or 'cancel'
if status ~= 'validating' then return reply({ status = status or 'missing', mode = mode }) end
local enqueued = tonumber(redis.call('HGET', batch, 'enqueued') or '0')
err.enqueued = enqueued
local now = wholeText(A.now)
redis.call('HSET', batch, 'status', 'failed', 'failed_at', now, 'total', enqueued, 'rejected_lines', A.rejected_lines, 'import_error', cjson.encode(err))
if mode ~= 'keep' then redis.call('HSET', batch, 'cancel_reason', A.cancel_reason) end
redis.call('SREM', K.importing, A.batch_id)
redis.call('DEL', K.importer)
batchEvent(K.events, batch, A.batch_id, 'failed', now)
if redis.call('HEXISTS', batch, 'parent') == 0 then redis.call('HINCRBY', K.metrics, 'import_failed', 1) end
return reply({ status = 'failed', mode = mode })
