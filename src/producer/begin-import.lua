--[[
  Starts (or resumes) the import of a batch's input: takes the importer lease, sets memory aside for recording a
  failure, and, to resume, reopens the batch so that a re-run of the same file adds only the missing custom_ids.
  KEYS: 1 batch hash, 2 batch error list, 3 importing set, 4 importer lease, 5 batch request list,
        6 batch custom_id hash, 7 memory reserve
  ARGV: 1 batch id, 2 lease owner, 3 lease (ms), 4 reserve (bytes), 5 "new" (a record made "validating" for this
        import) or "resume", 6 on_import_error ("cancel" | "keep")
  Returns {status before, highest request seq so far, project} or {"busy"|"missing"|<status that cannot resume>, 0}.
]]
local batch, lease = KEYS[1], KEYS[4]
local reserve = tonumber(ARGV[4])
if not reserve or reserve < 0 or reserve > 64 * 1024 * 1024 then error('chatq begin-import: bad reserve') end
if ARGV[5] ~= 'new' and ARGV[5] ~= 'resume' then error('chatq begin-import: bad mode') end
if ARGV[6] ~= 'cancel' and ARGV[6] ~= 'keep' then error('chatq begin-import: bad on_import_error') end
local status = redis.call('HGET', batch, 'status')
if not status then return { 'missing', 0 } end
if redis.call('EXISTS', lease) == 1 then return { 'busy', 0 } end
if ARGV[5] == 'new' then
  if status ~= 'validating' then return { status, 0 } end
else
  if status == 'cancelled' or status == 'cancelling' then return { status, 0 } end
  redis.call('HSET', batch, 'status', 'validating')
  redis.call('HDEL', batch, 'import_error', 'failed_at', 'completed_at', 'total', 'cancel_requested')
  for _, k in ipairs({ KEYS[1], KEYS[5], KEYS[6] }) do redis.call('PERSIST', k) end
  redis.call('DEL', KEYS[2])
  redis.call('SADD', KEYS[3], ARGV[1])
end
redis.call('HSET', batch, 'on_import_error', ARGV[6])
redis.call('SET', lease, ARGV[2], 'PX', tonumber(ARGV[3]))
if reserve > 0 then
  -- Allocated by Redis (zero bytes up to the offset), not built as a Lua string.
  redis.call('SETRANGE', KEYS[7], reserve - 1, 'r')
  redis.call('PEXPIRE', KEYS[7], tonumber(ARGV[3]) * 4)
end
return { status, tonumber(redis.call('HGET', batch, 'seq') or '0'), redis.call('HGET', batch, 'project') or 'default' }
