--[[
  Appends requests to their batch and to their users' lanes, in input order.
  KEYS: 1 batch hash, 2 batch request list, 3 batch custom_id hash, 4 lane set,
        then for each request: request hash, lane list, user request index.
  ARGV: 1 batch id, 2 now (ms), then 9 values per request:
        id, custom_id, userid, model, body, seq, line, group size, extra (JSON object of more fields, or "").
  A group (the turns of one script) is accepted whole or not at all.
  Returns { ids that became their lane's head (to add to BullMQ), 0-based indexes of rejected groups }.
]]
local batchKey, reqsKey, cidsKey, lanesKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batchId, now = ARGV[1], ARGV[2]
local N = 9
local count = (#ARGV - 2) / N
local heads, rejected = {}, {}
local i = 0
while i < count do
  local group = tonumber(ARGV[3 + i * N + 7])
  local clash = false
  for g = 0, group - 1 do
    if redis.call('HEXISTS', cidsKey, ARGV[3 + (i + g) * N + 1]) == 1 then
      clash = true
      break
    end
  end
  if clash then
    rejected[#rejected + 1] = i
  else
    for g = 0, group - 1 do
      local a = 3 + (i + g) * N
      local k = 5 + (i + g) * 3
      local id, userid = ARGV[a], ARGV[a + 2]
      redis.call('HSET', cidsKey, ARGV[a + 1], id)
      redis.call('HSET', KEYS[k], 'batch', batchId, 'custom_id', ARGV[a + 1], 'userid', userid, 'model', ARGV[a + 3],
        'body', ARGV[a + 4], 'seq', ARGV[a + 5], 'line', ARGV[a + 6], 'status', 'queued', 'attempts', 0, 'created_at', now)
      if ARGV[a + 8] ~= '' then
        for field, value in pairs(cjson.decode(ARGV[a + 8])) do
          redis.call('HSET', KEYS[k], field, value)
        end
      end
      redis.call('RPUSH', reqsKey, id)
      redis.call('ZADD', KEYS[k + 2], now, id)
      if redis.call('RPUSH', KEYS[k + 1], id) == 1 then
        heads[#heads + 1] = id
        redis.call('SADD', lanesKey, userid)
      end
    end
    redis.call('HINCRBY', batchKey, 'enqueued', group)
  end
  i = i + group
end
return { heads, rejected }
