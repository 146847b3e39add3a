--[[
  Appends requests to their batch and to their users' lanes, in input order.
  KEYS: 1 batch hash, 2 batch request list, 3 batch custom_id hash (custom_id -> seq), 4 lane set, 5 importer lease
  ARGV: 1 batch id, 2 now (ms), 3 key prefix (the hash tag every key here shares), 4 highest seq of earlier imports
        of this batch (a re-run adds only the custom_ids they lack; 0 for a first import), 5 the batch's project,
        6 and 7 what comes before and after the userid in that project's user request index keys, 8 this importer's
        lease owner, 9 the lease (ms), 10 how long (s) a userid stays its project's after this import (0: for ever), 11 the
        admission (admission.lua: the project's share of the queue), then per request:
        "id|userid|seq|line|group size|has extra" (characters that need no escaping), custom_id, model,
        body (JSON text, kept as is), and when "has extra" is 1, a JSON object of more fields.
  A userid belongs to the project that first used it (KEY.userProject): the endpoint's memory is per userid, so a
  group with a userid another project holds is refused (its end user's memory is not this project's to read).
  A group (the turns of one script) is accepted whole or not at all. Every argument is read and checked before the
  first write. An importer whose lease lapsed (it could not reach Redis for a lease period) writes nothing more once
  its batch has been ended or another importer holds the lease: the answer is an IMPORT_LOST error. While the batch
  is still being imported and nobody else holds the lease, it takes the lease again.
  A request that becomes its lane's head goes to BullMQ within the project's allowance, else to its backlog.
  Returns { ids that became their lane's head and were admitted (to add to BullMQ), 0-based indexes of rejected groups (a custom_id
            already in this import), 0-based indexes of groups an earlier import of the batch already holds, 0-based
            indexes of groups refused for a userid another project holds, 1 when a cancel was asked (nothing was
            written: the importer stops reading) else 0 }.
]]
--- @include keys
--- @include admission
local batchKey, reqsKey, cidsKey, lanesKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batchId, now, prefix, earlier, project, userIndex, userIndexEnd = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local owner, leaseMs, userTtl = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
if not earlier then error('chatq enqueue-requests: bad earlier seq') end
if not userTtl or userTtl < 0 or userTtl ~= math.floor(userTtl) then error('chatq enqueue-requests: bad userid hold') end
local admission = admissionOf(ARGV[11])
if not leaseMs or leaseMs < 1 or owner == '' then error('chatq enqueue-requests: bad lease') end
if string.sub(userIndex, 1, #prefix) ~= prefix then error('chatq enqueue-requests: user index outside the prefix') end
local metas = {}
local a = 12
local highest = 0
while a <= #ARGV do
  local id, userid, seq, line, group, hasExtra = string.match(ARGV[a], '^([^|]+)|([^|]+)|(%d+)|(%d+)|(%d+)|([01])$')
  if not id or a + 3 > #ARGV then error('chatq enqueue-requests: malformed request at argument ' .. a) end
  local m = { id, ARGV[a + 1], userid, ARGV[a + 2], seq, line, tonumber(group), ARGV[a + 3], nil }
  highest = math.max(highest, tonumber(seq))
  a = a + 4
  if hasExtra == '1' then
    m[9] = cjson.decode(ARGV[a])
    a = a + 1
  end
  metas[#metas + 1] = m
end
local count = #metas
local heads, rejected, already, foreign = {}, {}, {}, {}
local seen, cidPairs, ids, claimed = {}, {}, {}, {}
-- Writes to the batch's own keys go out once per call (variadic), not once per request.
local function flush(key, command, values)
  for from = 1, #values, 1000 do
    redis.call(command, key, unpack(values, from, math.min(from + 999, #values)))
  end
end
-- First every check (reads only), then every write: an error in the checks leaves nothing behind.
local fate, holders = {}, {}
local i = 1
while i <= count do
  local group = metas[i][7]
  fate[i] = 'new'
  for g = 0, group - 1 do
    local cid = metas[i + g][2]
    local existing = seen[cid] and '' or redis.call('HGET', cidsKey, cid)
    if existing then
      -- Held by an earlier import of this batch (a re-run adds what is missing), or a duplicate in this one.
      local seq = tonumber(existing)
      fate[i] = (seq and seq <= earlier) and 'held' or 'clash'
      break
    end
  end
  if fate[i] == 'new' then
    for g = 0, group - 1 do
      local userid = metas[i + g][3]
      if holders[userid] == nil then holders[userid] = redis.call('GET', KEY.userProject(prefix, userid)) end
      if holders[userid] and holders[userid] ~= project then
        fate[i] = 'foreign'
        break
      end
    end
  end
  if fate[i] == 'new' then
    for g = 0, group - 1 do seen[metas[i + g][2]] = true end
  elseif fate[i] == 'foreign' then
    foreign[#foreign + 1] = i - 1
  elseif fate[i] == 'clash' then
    rejected[#rejected + 1] = i - 1
  else
    already[#already + 1] = i - 1
  end
  i = i + group
end

local status, holder = redis.call('HGET', batchKey, 'status'), redis.call('GET', KEYS[5])
if status ~= 'validating' or (holder and holder ~= owner) then
  return redis.error_reply('IMPORT_LOST the import of batch ' .. batchId .. ' lost its lease: the batch is ' .. (status or 'gone') .. (holder and holder ~= owner and ' and another process imports it' or ''))
end
if not holder then redis.call('SET', KEYS[5], owner, 'PX', leaseMs) end
-- A cancel asked while the batch is imported: nothing more is enqueued (the importer stops, and ends it cancelled).
if redis.call('HEXISTS', batchKey, 'cancel_requested') == 1 then return { {}, {}, {}, {}, 1 } end

i = 1
while i <= count do
  local group = metas[i][7]
  if fate[i] == 'new' then
    for g = 0, group - 1 do
      local m = metas[i + g]
      local id, userid = m[1], m[3]
      local key = KEY.request(prefix, id)
      cidPairs[#cidPairs + 1] = m[2]
      cidPairs[#cidPairs + 1] = m[5]
      ids[#ids + 1] = id
      redis.call('HSET', key, 'batch', batchId, 'custom_id', m[2], 'userid', userid, 'model', m[4],
        'seq', m[5], 'line', m[6], 'status', 'queued', 'created_at', now)
      -- The body, often longer than a compact hash value, lives beside the hash.
      redis.call('SET', KEY.requestBody(prefix, id), m[8])
      if m[9] then
        for field, value in pairs(m[9]) do redis.call('HSET', key, field, value) end
      end
      if project ~= 'default' then redis.call('HSET', key, 'project', project) end
      if not claimed[userid] then
        claimed[userid] = true
        if userTtl > 0 then
          redis.call('SET', KEY.userProject(prefix, userid), project, 'EX', userTtl)
        else
          redis.call('SET', KEY.userProject(prefix, userid), project)
        end
      end
      redis.call('RPUSH', userIndex .. userid .. userIndexEnd, id)
      if redis.call('RPUSH', KEY.lane(prefix, userid), id) == 1 then
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
if highest > tonumber(redis.call('HGET', batchKey, 'seq') or '0') then redis.call('HSET', batchKey, 'seq', highest) end
return { admit(prefix, project, heads, tonumber(now), admission), rejected, already, foreign, 0 }
