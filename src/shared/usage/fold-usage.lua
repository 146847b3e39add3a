--[[
  Folds finished requests' usage records (pushed by finish-request.lua) into the user, model and day aggregates, the
  batch's (all but its cost, which finish-request.lua counts at once for budgets) and the cluster-wide metrics.
  Records are read, applied and trimmed from the list in this one script, so each counts exactly once, whichever
  process folds (workers every second, readers before they read).
  Its contract (keys, arguments, reply) is foldScript's in usage-fold.ts: the pending records, the cluster-wide
  metrics, and every aggregate and index key that the records at the head of the list name (the caller reads them
  first). A record that names a key not declared (another process folded the ones read meanwhile) ends the fold
  before it; it waits for the next one. Declared keys are what Redis Cluster needs to run the script where they are,
  even mid-resharding.
  A record is JSON text: UsageRecord (usage-fold.ts), by name. Calls of a model without a price (cost_nano -1) count
  as unpriced: a request's, a repeat's, and each of a grading's.
  Answers folded: how many records it folded.
]]
--- @include keys
--- @include contract
local most, now, maxModels, prefix, otherModel = A.most, A.now, A.max_models, A.prefix, A.other_model
if most < 1 or otherModel == '' then error('chatq fold-usage: bad arguments') end
local declared = {}
for _, key in ipairs(K.declared) do declared[key] = true end
local records = redis.call('LRANGE', K.pending, 0, most - 1)
local sums, order, members, metrics = {}, {}, {}, {}
local function add(key, field, n)
  if n == 0 then return end
  local s = sums[key]
  if not s then
    s = {}
    sums[key] = s
    order[#order + 1] = key
  end
  s[field] = (s[field] or 0) + n
end
local function touch(index, member)
  members[index] = members[index] or {}
  members[index][member] = true
end
-- Keys built once per fold for each project and name (a record names them; most records share them).
local DIMS = { 'user', 'model', 'day', 'batch' }
local usageKeys, indexKeys = {}, {}
local function usageKey(p, d, name)
  local byProject = usageKeys[p]
  if not byProject then
    byProject = { {}, {}, {}, {} }
    usageKeys[p] = byProject
  end
  local key = byProject[d][name]
  if not key then
    key = KEY.usage(prefix, p, DIMS[d], name)
    byProject[d][name] = key
  end
  return key
end
local function indexesOf(p)
  local x = indexKeys[p]
  if not x then
    x = {}
    for d = 1, 4 do x[d] = KEY.usageIndex(prefix, p, DIMS[d]) end
    indexKeys[p] = x
  end
  return x
end
-- A record's aggregates (user, model, day, batch), its "other" model aggregate, their indexes and member names.
local function shapeOf(r)
  local p = r.project
  local keys = { usageKey(p, 1, r.userid), usageKey(p, 2, r.model), usageKey(p, 3, r.day), usageKey(p, 4, r.batch) }
  return keys, usageKey(p, 2, otherModel), indexesOf(p), { r.userid, r.model, r.day, r.batch }
end
local function allDeclared(list)
  for _, key in ipairs(list) do
    if not declared[key] then return false end
  end
  return true
end
local kept, admitted = {}, {}
local folded = 0
for _, text in ipairs(records) do
  local r = cjson.decode(text)
  local keys, other, indexes, names = shapeOf(r)
  if not (allDeclared(keys) and allDeclared(indexes) and declared[other]) then break end
  folded = folded + 1
  -- A model name new past the bound is counted as "other" (decided once per name and fold).
  local index = indexes[2]
  local chosen = kept[keys[2]]
  if chosen == nil then
    if redis.call('ZSCORE', index, names[2]) then
      chosen = true
    else
      local n = admitted[index] or 0
      chosen = redis.call('ZCARD', index) + n < maxModels
      if chosen then admitted[index] = n + 1 end
    end
    kept[keys[2]] = chosen
  end
  if not chosen then keys[2], names[2] = other, otherModel end
  local grading, cost = r.grading_calls, r.cost_nano
  for d = grading and 2 or 1, 4 do
    if grading then
      add(keys[d], 'grading_calls', grading)
      if cost >= 0 then add(keys[d], 'grading_cost_nano', cost) end
    elseif r['repeat'] then
      add(keys[d], 'repeat_calls', 1)
      if cost >= 0 then add(keys[d], 'repeat_cost_nano', cost) end
    else
      add(keys[d], 'requests', 1)
      add(keys[d], r.status, 1)
    end
    if cost < 0 then add(keys[d], 'unpriced', grading or 1) end
    for field, n in pairs(r.tokens) do add(keys[d], field, n) end
    if cost >= 0 and d < 4 then add(keys[d], 'cost_nano', cost) end
    touch(indexes[d], names[d])
  end
  local counted = grading and 'grading_calls' or r['repeat'] and 'repeat_calls' or 'requests:' .. r.status
  metrics[counted] = (metrics[counted] or 0) + (grading or 1)
  if r.reason and not r['repeat'] and not grading then metrics['failed:' .. r.reason] = (metrics['failed:' .. r.reason] or 0) + 1 end
  if r.latency_bucket ~= '' then
    metrics['latency_bucket:' .. r.latency_bucket] = (metrics['latency_bucket:' .. r.latency_bucket] or 0) + 1
    metrics['latency_sum_ms'] = (metrics['latency_sum_ms'] or 0) + r.latency_ms
  end
end
for _, key in ipairs(order) do
  for field, n in pairs(sums[key]) do redis.call('HINCRBY', key, field, n) end
end
for index, set in pairs(members) do
  for member in pairs(set) do redis.call('ZADD', index, now, member) end
end
for field, n in pairs(metrics) do redis.call('HINCRBY', K.metrics, field, n) end
if folded > 0 then redis.call('LTRIM', K.pending, folded, -1) end
return reply({ folded = folded })
