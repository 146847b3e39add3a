--[[
  Folds finished requests' usage records (pushed by finish-request.lua) into the user, model and day aggregates, the
  batch's (all but its cost, which finish-request.lua counts at once for budgets) and the cluster-wide metrics.
  Records are read, applied and trimmed from the list in this one script, so each counts exactly once, whichever
  process folds (workers every second, readers before they read).
  KEYS: 1 pending usage records (list), 2 cluster-wide metrics hash, 3... every aggregate and index key that the
        records at the head of the list name (the caller reads them first: usage-fold.ts). A record that names a key
        not declared here (another process folded the ones read meanwhile) ends the fold before it; it waits for the
        next one. Declared keys are what Redis Cluster needs to run the script where they are, even mid-resharding.
  ARGV: 1 most records to fold, 2 now (ms), 3 most distinct model names per project (past it: the name of ARGV 5), 4 key
        prefix, 5 the model name the others are counted under (OTHER_MODEL: "other")
  A record is JSON: {p: project, u: userid, m: model, d: day, b: batch id, s: status,
  t: [prompt, completion, total, cached, reasoning], c: cost in nano-USD or -1 (unpriced), l: latency bucket or "", ms: latency,
  e: a failure's reason (counted in the metrics as "failed:<reason>"; absent when it succeeded),
  rp: 1 when it is repeat spend (finish-request.lua: another call of a request counted already): its tokens and cost
  count, as repeat_calls and repeat_cost_nano too, but not as a request;
  g: when it is a grading's (expect.judge), the judge calls it paid for (re-asks included; 0 for a grading never
  sent): its tokens and cost count, as grading_calls and grading_cost_nano too, not as a request, and not for any
  user (u is "")}
  Calls of a model without a price (c -1) count as unpriced: a request's, a repeat's, and each of a grading's.
  Returns how many records it folded.
]]
--- @include keys
local most, now, maxModels, prefix, otherModel = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
if not most or most < 1 or not now or not maxModels or not prefix or not otherModel or otherModel == '' then error('chatq fold-usage: bad arguments') end
local declared = {}
for i = 3, #KEYS do declared[KEYS[i]] = true end
local records = redis.call('LRANGE', KEYS[1], 0, most - 1)
local tokens = { 'prompt_tokens', 'completion_tokens', 'total_tokens', 'cached_tokens', 'reasoning_tokens' }
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
  local keys = { usageKey(r.p, 1, r.u), usageKey(r.p, 2, r.m), usageKey(r.p, 3, r.d), usageKey(r.p, 4, r.b) }
  return keys, usageKey(r.p, 2, otherModel), indexesOf(r.p), { r.u, r.m, r.d, r.b }
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
  for d = r.g and 2 or 1, 4 do
    if r.g then
      add(keys[d], 'grading_calls', r.g)
      if r.c >= 0 then add(keys[d], 'grading_cost_nano', r.c) end
    elseif r.rp then
      add(keys[d], 'repeat_calls', 1)
      if r.c >= 0 then add(keys[d], 'repeat_cost_nano', r.c) end
    else
      add(keys[d], 'requests', 1)
      add(keys[d], r.s, 1)
    end
    if r.c < 0 then add(keys[d], 'unpriced', r.g or 1) end
    for t = 1, 5 do add(keys[d], tokens[t], r.t[t]) end
    if r.c >= 0 and d < 4 then add(keys[d], 'cost_nano', r.c) end
    touch(indexes[d], names[d])
  end
  local counted = r.g and 'grading_calls' or r.rp and 'repeat_calls' or 'requests:' .. r.s
  metrics[counted] = (metrics[counted] or 0) + (r.g or 1)
  if r.e and not r.rp and not r.g then metrics['failed:' .. r.e] = (metrics['failed:' .. r.e] or 0) + 1 end
  if r.l ~= '' then
    metrics['latency_bucket:' .. r.l] = (metrics['latency_bucket:' .. r.l] or 0) + 1
    metrics['latency_sum_ms'] = (metrics['latency_sum_ms'] or 0) + r.ms
  end
end
for _, key in ipairs(order) do
  for field, n in pairs(sums[key]) do redis.call('HINCRBY', key, field, n) end
end
for index, set in pairs(members) do
  for member in pairs(set) do redis.call('ZADD', index, now, member) end
end
for field, n in pairs(metrics) do redis.call('HINCRBY', KEYS[2], field, n) end
if folded > 0 then redis.call('LTRIM', KEYS[1], folded, -1) end
return folded
