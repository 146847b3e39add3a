--[[
  Appends requests to their batch and to their users' lanes, in input order.
  KEYS: 1 batch hash, 2 batch request list, 3 batch custom_id hash, 4 lane set
  ARGV: 1 batch id, 2 now (ms), 3 key prefix (the hash tag every key here shares), then 2 values per request:
        meta (JSON: [id, custom_id, userid, model, seq, line, group size, extra fields or null]), body (JSON text, kept as is).
  A group (the turns of one script) is accepted whole or not at all.
  Returns { ids that became their lane's head (to add to BullMQ), 0-based indexes of rejected groups }.
]]
local batchKey, reqsKey, cidsKey, lanesKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batchId, now, prefix = ARGV[1], ARGV[2], ARGV[3]
local count = (#ARGV - 3) / 2
local metas = {}
for i = 1, count do metas[i] = cjson.decode(ARGV[2 + i * 2]) end
local heads, rejected = {}, {}
local i = 1
while i <= count do
  local group = metas[i][7]
  local clash = false
  for g = 0, group - 1 do
    if redis.call('HEXISTS', cidsKey, metas[i + g][2]) == 1 then
      clash = true
      break
    end
  end
  if clash then
    rejected[#rejected + 1] = i - 1
  else
    for g = 0, group - 1 do
      local m = metas[i + g]
      local id, userid = m[1], m[3]
      local key = prefix .. ':req:' .. id
      redis.call('HSET', cidsKey, m[2], id)
      redis.call('HSET', key, 'batch', batchId, 'custom_id', m[2], 'userid', userid, 'model', m[4],
        'seq', m[5], 'line', m[6], 'status', 'queued', 'attempts', 0, 'created_at', now)
      -- The body, often longer than a compact hash value, lives beside the hash.
      redis.call('SET', key .. ':body', ARGV[3 + (i + g) * 2])
      if m[8] ~= cjson.null then
        for field, value in pairs(m[8]) do redis.call('HSET', key, field, value) end
      end
      redis.call('RPUSH', reqsKey, id)
      redis.call('ZADD', prefix .. ':user:' .. userid .. ':reqs', now, id)
      if redis.call('RPUSH', prefix .. ':lane:' .. userid, id) == 1 then
        heads[#heads + 1] = id
        redis.call('SADD', lanesKey, userid)
      end
    end
    redis.call('HINCRBY', batchKey, 'enqueued', group)
  end
  i = i + group
end
return { heads, rejected }
