--[[
  Folds finished requests' usage records (pushed by finish-request.lua) into the user, model and day aggregates, the
  batch's (all but its cost, which finish-request.lua counts at once for budgets) and the cluster-wide metrics.
  Records are popped and applied in this one script, so each counts exactly once, whichever process folds (workers
  every second, readers before they read).
  KEYS: 1 pending usage records (list), 2 cluster-wide metrics hash
  ARGV: 1 most records to fold, 2 now (ms), 3 most distinct model names per project (past it: "other")
  A record is JSON: {k: [user usage, model usage, day usage, "other" model usage, batch usage], x: [user index,
  model index, day index, batch index], v: [userid, model, day, batch id], s: status,
  t: [prompt, completion, total, cached, reasoning], c: cost in nano-USD or -1 (unpriced), l: latency bucket or "", ms: latency}.
  Returns how many records it folded.
]]
local most, now, maxModels = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not most or most < 1 or not now or not maxModels then error('chatq fold-usage: bad arguments') end
local records = redis.call('LPOP', KEYS[1], most)
if not records then return 0 end
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
local kept, admitted = {}, {}
for _, text in ipairs(records) do
  local r = cjson.decode(text)
  -- A model name new past the bound is counted as "other" (decided once per name and fold).
  local index, mkey, mname = r.x[2], r.k[2], r.v[2]
  local chosen = kept[index .. '\0' .. mname]
  if chosen == nil then
    if redis.call('ZSCORE', index, mname) then
      chosen = true
    else
      local n = admitted[index] or 0
      chosen = redis.call('ZCARD', index) + n < maxModels
      if chosen then admitted[index] = n + 1 end
    end
    kept[index .. '\0' .. mname] = chosen
  end
  if not chosen then mkey, mname = r.k[4], 'other' end
  local keys, names = { r.k[1], mkey, r.k[3], r.k[5] }, { r.v[1], mname, r.v[3], r.v[4] }
  for d = 1, 4 do
    add(keys[d], 'requests', 1)
    add(keys[d], r.s, 1)
    for t = 1, 5 do add(keys[d], tokens[t], r.t[t]) end
    if r.c < 0 then add(keys[d], 'unpriced', 1) elseif d < 4 then add(keys[d], 'cost_nano', r.c) end
    touch(r.x[d], names[d])
  end
  metrics['requests:' .. r.s] = (metrics['requests:' .. r.s] or 0) + 1
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
return #records
