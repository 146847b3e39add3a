--[[
  Ends an import that cannot finish: the batch turns "failed" with why it stopped and how many requests it had
  enqueued (OpenAI's batch "errors"). The requests already enqueued are then cancelled or kept, as the batch's
  on_import_error says (the caller cancels them page by page with cancel-batch.lua).
  KEYS: 1 batch hash, 2 importing set, 3 importer lease, 4 memory reserve, 5 batch events, 6 the metrics hash (a
        batch's failed import counts once there as "import_failed"; its parts', a sharded batch's, do not)
  ARGV: 1 batch id, 2 now (ms), 3 error (JSON object with code and message), 4 rejected line count, 5 what its
        requests are cancelled with (JSON {code, message}; kept as the batch's cancel_reason, so that a worker that
        meets one of them still unsent cancels it the same way), 6 the lease owner of the import that failed ("" for
        the reconciler, which ends only imports whose lease has lapsed)
  An import whose lease another process holds now (it lost the lease and the batch's import was resumed elsewhere)
  changes nothing: the answer is {"busy", on_import_error}.
  Returns {status after, on_import_error}.
]]
--- @include events
local batch = KEYS[1]
if not tonumber(ARGV[2]) or not tonumber(ARGV[4]) then error('chatq fail-import: bad arguments') end
local err = cjson.decode(ARGV[3])
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[6] then return { 'busy', redis.call('HGET', batch, 'on_import_error') or 'cancel' } end
-- The reserve goes first: under a full Redis it is what makes room for the writes below.
redis.call('DEL', KEYS[4])
local status = redis.call('HGET', batch, 'status')
local mode = redis.call('HGET', batch, 'on_import_error') or 'cancel'
if status ~= 'validating' then return { status or 'missing', mode } end
local enqueued = tonumber(redis.call('HGET', batch, 'enqueued') or '0')
err.enqueued = enqueued
redis.call('HSET', batch, 'status', 'failed', 'failed_at', ARGV[2], 'total', enqueued, 'rejected_lines', ARGV[4], 'import_error', cjson.encode(err))
if mode ~= 'keep' then redis.call('HSET', batch, 'cancel_reason', ARGV[5]) end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
batchEvent(KEYS[5], batch, ARGV[1], 'failed', ARGV[2])
if redis.call('HEXISTS', batch, 'parent') == 0 then redis.call('HINCRBY', KEYS[6], 'import_failed', 1) end
return { 'failed', mode }
