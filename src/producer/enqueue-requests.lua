--[[
  Appends requests to their batch and to their users' lanes, in input order.
  KEYS: 1 batch hash, 2 batch request list, 3 batch custom_id hash, 4 lane set
  ARGV: 1 batch id, 2 now (ms), 3 key prefix (the hash tag every key here shares), then per request:
        "id|userid|seq|line|group size|has extra" (characters that need no escaping), custom_id, model,
        body (JSON text, kept as is), and when "has extra" is 1, a JSON object of more fields.
  A group (the turns of one script) is accepted whole or not at all.
  Returns { ids that became their lane's head (to add to BullMQ), 0-based indexes of rejected groups }.
]]
local batchKey, reqsKey, cidsKey, lanesKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batchId, now, prefix = ARGV[1], ARGV[2], ARGV[3]
local metas = {}
local a = 4
while a <= #ARGV do
  local id, userid, seq, line, group, hasExtra = string.match(ARGV[a], '^([^|]+)|([^|]+)|(%d+)|(%d+)|(%d+)|([01])$')
  local m = { id, ARGV[a + 1], userid, ARGV[a + 2], seq, line, tonumber(group), ARGV[a + 3], nil }
  a = a + 4
  if hasExtra == '1' then
    m[9] = cjson.decode(ARGV[a])
    a = a + 1
  end
  metas[#metas + 1] = m
end
local count = #metas
local heads, rejected = {}, {}
local seen, cidPairs, ids = {}, {}, {}
-- Writes to the batch's own keys go out once per call (variadic), not once per request.
local function flush(key, command, values)
  for from = 1, #values, 1000 do
    redis.call(command, key, unpack(values, from, math.min(from + 999, #values)))
  end
end
local i = 1
while i <= count do
  local group = metas[i][7]
  local clash = false
  for g = 0, group - 1 do
    local cid = metas[i + g][2]
    if seen[cid] or redis.call('HEXISTS', cidsKey, cid) == 1 then
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
      seen[m[2]] = true
      cidPairs[#cidPairs + 1] = m[2]
      cidPairs[#cidPairs + 1] = id
      ids[#ids + 1] = id
      redis.call('HSET', key, 'batch', batchId, 'custom_id', m[2], 'userid', userid, 'model', m[4],
        'seq', m[5], 'line', m[6], 'status', 'queued', 'created_at', now)
      -- The body, often longer than a compact hash value, lives beside the hash.
      redis.call('SET', key .. ':body', m[8])
      if m[9] then
        for field, value in pairs(m[9]) do redis.call('HSET', key, field, value) end
      end
      redis.call('RPUSH', prefix .. ':user:' .. userid .. ':reqs', id)
      if redis.call('RPUSH', prefix .. ':lane:' .. userid, id) == 1 then
        heads[#heads + 1] = id
        redis.call('SADD', lanesKey, userid)
      end
    end
  end
  i = i + group
end
flush(cidsKey, 'HSET', cidPairs)
flush(reqsKey, 'RPUSH', ids)
if #ids > 0 then redis.call('HINCRBY', batchKey, 'enqueued', #ids) end
return { heads, rejected }
