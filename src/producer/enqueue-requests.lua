--[[
  Appends requests to their batch and to their users' lanes, in input order.
  Its contract (keys, arguments, reply) is enqueueScript's in enqueue-script.ts.
  A userid belongs to the project that first used it (KEY.userProject): the endpoint's memory is per userid, so a
  group with a userid another project holds is refused (its end user's memory is not this project's to read).
  A group (the turns of one script) is accepted whole or not at all. Every argument is read and checked before the
  first write. An importer whose lease lapsed (it could not reach Redis for a lease period) writes nothing more once
  its batch has been ended or another importer holds the lease: the answer is an IMPORT_LOST error. While the batch
  is still being imported and nobody else holds the lease, it takes the lease again.
  A request that becomes its lane's head goes to BullMQ within the project's allowance, else to its backlog.
  Answers heads (ids that became their lane's head and were admitted: to add to BullMQ), rejected (0-based indexes
  of groups with a custom_id already in this import), already (of groups an earlier import of the batch already
  holds), foreign (of groups refused for a userid another project holds) and cancelled (true when a cancel was asked:
  nothing was written, the importer stops reading).
]]
--- @include keys
--- @include admission
--- @include contract
local batchKey, reqsKey, cidsKey, lanesKey = K.batch, K.batch_requests, K.batch_custom_ids, K.lanes
local batchId, now, prefix, earlier, project = A.batch_id, wholeText(A.now), A.prefix, A.earlier, A.project
local userIndex, userIndexEnd = A.user_index[1], A.user_index[2]
local owner, leaseMs, userTtl = A.owner, A.lease_ms, A.user_hold_s
local admission = admissionOf(A.admission)
if leaseMs < 1 or owner == '' then error('chatq enqueue-requests: bad lease') end
if type(userIndex) ~= 'string' or type(userIndexEnd) ~= 'string' or string.sub(userIndex, 1, #prefix) ~= prefix then error('chatq enqueue-requests: user index outside the prefix') end
local metas = A.requests
local highest = 0
for n, m in ipairs(metas) do
  if type(m.id) ~= 'string' or type(m.userid) ~= 'string' or type(m.custom_id) ~= 'string' or type(m.model) ~= 'string' or type(m.body) ~= 'string' or type(m.seq) ~= 'number' or type(m.line) ~= 'number' or type(m.group) ~= 'number' or (m.extra ~= nil and type(m.extra) ~= 'table') then
    error('chatq enqueue-requests: malformed request ' .. n)
  end
  highest = math.max(highest, m.seq)
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
-- First every check (reads only), then every write: an error in the checks leaves nothing behind. The custom_ids
-- held already and the users' projects are read in one command each (a thousand at a time), not one per request.
local function readAll(command, key, names)
  local values = {}
  for from = 1, #names, 1000 do
    local last = math.min(from + 999, #names)
    local got = key and redis.call(command, key, unpack(names, from, last)) or redis.call(command, unpack(names, from, last))
    for j, value in ipairs(got) do values[names[from + j - 1]] = value end
  end
  return values
end
local cidNames, userKeys, userKeyOf = {}, {}, {}
for n, m in ipairs(metas) do
  cidNames[n] = m.custom_id
  if not userKeyOf[m.userid] then
    userKeyOf[m.userid] = KEY.userProject(prefix, m.userid)
    userKeys[#userKeys + 1] = userKeyOf[m.userid]
  end
end
local heldCids, heldUsers = readAll('HMGET', cidsKey, cidNames), readAll('MGET', nil, userKeys)
local fate = {}
local i = 1
while i <= count do
  local group = metas[i].group
  fate[i] = 'new'
  for g = 0, group - 1 do
    local cid = metas[i + g].custom_id
    local existing = seen[cid] and '' or heldCids[cid]
    if existing then
      -- Held by an earlier import of this batch (a re-run adds what is missing), or a duplicate in this one.
      local seq = tonumber(existing)
      fate[i] = (seq and seq <= earlier) and 'held' or 'clash'
      break
    end
  end
  if fate[i] == 'new' then
    for g = 0, group - 1 do
      local userid = metas[i + g].userid
      local holder = heldUsers[userKeyOf[userid]]
      if holder and holder ~= project then
        fate[i] = 'foreign'
        break
      end
    end
  end
  if fate[i] == 'new' then
    for g = 0, group - 1 do seen[metas[i + g].custom_id] = true end
  elseif fate[i] == 'foreign' then
    foreign[#foreign + 1] = i - 1
  elseif fate[i] == 'clash' then
    rejected[#rejected + 1] = i - 1
  else
    already[#already + 1] = i - 1
  end
  i = i + group
end

local status, holder = redis.call('HGET', batchKey, 'status'), redis.call('GET', K.importer)
if status ~= 'validating' or (holder and holder ~= owner) then
  return redis.error_reply('IMPORT_LOST the import of batch ' .. batchId .. ' lost its lease: the batch is ' .. (status or 'gone') .. (holder and holder ~= owner and ' and another process imports it' or ''))
end
if not holder then redis.call('SET', K.importer, owner, 'PX', leaseMs) end
-- A cancel asked while the batch is imported: nothing more is enqueued (the importer stops, and ends it cancelled).
if redis.call('HEXISTS', batchKey, 'cancel_requested') == 1 then return reply({ heads = {}, rejected = {}, already = {}, foreign = {}, cancelled = true }) end

i = 1
while i <= count do
  local group = metas[i].group
  if fate[i] == 'new' then
    for g = 0, group - 1 do
      local m = metas[i + g]
      local id, userid = m.id, m.userid
      local key = KEY.request(prefix, id)
      cidPairs[#cidPairs + 1] = m.custom_id
      cidPairs[#cidPairs + 1] = wholeText(m.seq)
      ids[#ids + 1] = id
      -- Its place in its user's lane: how many of the user's requests are ahead of it (how far its user has got, once
      -- it is the head: finish-request.lua).
      local ahead = redis.call('RPUSH', KEY.lane(prefix, userid), id) - 1
      redis.call('HSET', key, 'batch', batchId, 'custom_id', m.custom_id, 'userid', userid, 'model', m.model,
        'seq', wholeText(m.seq), 'line', wholeText(m.line), 'status', 'queued', 'created_at', now, 'ahead', wholeText(ahead))
      -- The body, often longer than a compact hash value, lives beside the hash.
      redis.call('SET', KEY.requestBody(prefix, id), m.body)
      if m.extra then
        for field, value in pairs(m.extra) do redis.call('HSET', key, field, value) end
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
      if ahead == 0 then
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
return reply({ heads = admit(prefix, project, heads, A.now, admission), rejected = rejected, already = already, foreign = foreign, cancelled = false })
