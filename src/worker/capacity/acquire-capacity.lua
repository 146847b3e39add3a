--[[
  Reserves capacity for one upstream call under every limit that applies (global and per model), shared by all
  worker processes. Time is Redis's clock, so workers on other machines agree on it.
  - queue paused (bad key, no balance, quota): nothing is reserved; the caller puts its request back.
  - credentials not yet proven (first call, or after a pause): one call at a time goes as a probe until one
    succeeds, so a bad key costs one call, not one per worker slot. Its lease lasts the lock duration and the
    prober renews it while its call is in flight, so a killed prober frees it within that time.
  - a pause after a 429 holds every reservation until it ends.
  - an upstream outage (note-outage.lua) holds every reservation until its backoff ends, but lets one call through
    per probe interval: the first that succeeds ends the outage for everyone.
  - requests per minute: GCRA with no burst: calls are spaced 60 s / rpm apart, so no sliding minute ever holds
    more than rpm calls; a reserved slot may lie in the future, at most ahead_ms (the caller sleeps until it); one
    further out is not reserved (the caller asks again, holding no call slot meanwhile).
  - large calls (a token bound over a share of the TPM limit; the caller charges each half that share) also go
    through a scope of their own whose token limit is that share: together they hold at most that much of any
    minute, and the rest is left to ordinary calls.
  - projects share the global limits: while more than one project has asked within active_ms, each project's calls
    also go through a scope of the project whose limits are its weight's share of the global ones (a project alone
    has them all). A project that asks for more than its share waits; the others find their share free.
  - tokens per minute: a sliding one-minute log of estimated tokens (corrected by settle-capacity.lua);
    when the log is full nothing is reserved and the caller waits. The minute's total and its last sixth's are kept
    as running sums (`__total`; `__recent` for entries scored from `__recent_from` on), each entry leaving them
    once: a reservation's work does not grow with the calls in the window.
  KEYS: 1 pause-until, 2 queue pause reason, 3 credentials proven, 4 probe holder, 5 outage record,
        6 outage-until, 7 outage probe holder,
        then per scope (global, model, large calls, the project): request TAT key, token log zset, token amount hash
        (a scope that does not apply is named and never touched), 20 the projects asking (project -> last ask, ms)
  ARGV[1]: the named arguments (--- @include args):
    member (unique per call, or per group); tokens (estimated; a group's: their sum); headroom (the fraction of each
    window kept free, 0..0.5); rpm, tpm (global), model_rpm, model_tpm (0 = no limit); probe_lease_ms;
    outage_probe_ms (the outage probe's interval); calls (reserved together: 1, or a group of one process's calls:
    consecutive request slots, their tokens as one log entry; a group is not reserved as a probe or during an
    outage's backoff, where one call at a time goes); large_tpm (the large-call token limit; 0: not a large call);
    ahead_ms (how far ahead a request slot may be reserved); project (the call's), weights (JSON {project: weight},
    1 when absent), active_ms (how long after its last ask a project still counts as asking).
  Every argument is checked before the first write: a bad one is an error that leaves nothing behind.
  Answers by name: state (1 reserved, 2 reserved as the probe, 0 not reserved, -1 the queue is paused), wait_ms
  (reserved: before calling; not reserved: before asking again), outage (1 while an outage is on record: a success
  should end it), spacing_ms (reserved: the ms between the group's request slots, as text).
]]
--- @include args
local MAX_TOKENS = 1e12
local A = namedArgs('acquire-capacity', {
  member = 'string', tokens = 'whole', headroom = 'number', rpm = 'whole', tpm = 'whole', model_rpm = 'whole',
  model_tpm = 'whole', probe_lease_ms = 'whole', outage_probe_ms = 'whole', calls = 'whole', large_tpm = 'whole',
  ahead_ms = 'whole', project = 'string', weights = 'string', active_ms = 'whole',
})
for _, name in ipairs({ 'tokens', 'rpm', 'tpm', 'model_rpm', 'model_tpm', 'large_tpm' }) do
  if A[name] > MAX_TOKENS then error('chatq acquire-capacity: argument "' .. name .. '" must be at most ' .. MAX_TOKENS) end
end
local est, headroom = A.tokens, A.headroom
if headroom < 0 or headroom > 0.5 then error('chatq acquire-capacity: argument "headroom" must be within 0..0.5') end
-- Per scope (global 0, model 1, large calls 2, project 3): its rpm and tpm limits (the project's: its share, below).
local limits = { A.rpm, A.tpm, A.model_rpm, A.model_tpm, 0, A.large_tpm, 0, 0 }
local scopes = { 0, 1 }
if A.large_tpm > 0 then scopes[#scopes + 1] = 2 end
if #KEYS < 20 then error('chatq acquire-capacity: expected the gate keys, four scopes and the projects asking') end
local okWeights, weights = pcall(cjson.decode, A.weights)
if not okWeights or type(weights) ~= 'table' then error('chatq acquire-capacity: argument "weights" must be a JSON object') end
if A.project == '' or A.active_ms < 1 then error('chatq acquire-capacity: a project and active_ms are needed') end
local lease, probeEvery, calls = A.probe_lease_ms, A.outage_probe_ms, A.calls
if calls < 1 or calls > 10000 then error('chatq acquire-capacity: argument "calls" must be at least 1 (and at most 10000)') end
if lease == 0 or probeEvery == 0 or lease > 86400000 or probeEvery > 86400000 then
  error('chatq acquire-capacity: leases must be from 1 ms to a day')
end
local member = A.member
local function answer(state, waitMs, outage, spacing)
  return { 'state', state, 'wait_ms', waitMs, 'outage', outage, 'spacing_ms', spacing or '0' }
end

if redis.call('EXISTS', KEYS[2]) == 1 then return answer(-1, 0, 0) end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = 60000 * (1 + headroom)
local outage = redis.call('EXISTS', KEYS[5])

local function sumAmounts(amounts, members)
  local sum = 0
  for i = 1, #members, 500 do
    for _, v in ipairs(redis.call('HMGET', amounts, unpack(members, i, math.min(i + 499, #members)))) do
      sum = sum + (tonumber(v) or 0)
    end
  end
  return sum
end

-- Milliseconds until `est` more tokens fit under `limit` in the window of length `len` that starts after
-- `from`, whose entries add up to `total` (0 when they fit now; an empty window always admits one call).
local function roomWait(log, amounts, total, limit, from, len)
  if total == 0 or total + est <= limit then return 0 end
  local need, freed = total + est - limit, 0
  local entries = redis.call('ZRANGEBYSCORE', log, '(' .. from, '+inf', 'WITHSCORES')
  for i = 1, #entries, 2 do
    freed = freed + (tonumber(redis.call('HGET', amounts, entries[i])) or 0)
    if freed >= need then return math.max(1, tonumber(entries[i + 1]) + len - now) end
  end
  return 1000
end

-- The projects asking now share the global limits by weight.
redis.call('ZADD', KEYS[20], now, A.project)
redis.call('ZREMRANGEBYSCORE', KEYS[20], '-inf', now - A.active_ms)
redis.call('PEXPIRE', KEYS[20], A.active_ms * 2)
local asking = redis.call('ZRANGE', KEYS[20], 0, -1)
if #asking > 1 then
  local total, mine = 0, tonumber(weights[A.project]) or 1
  for _, p in ipairs(asking) do total = total + (tonumber(weights[p]) or 1) end
  limits[7], limits[8] = A.rpm * mine / total, A.tpm * mine / total
  if limits[7] > 0 or limits[8] > 0 then scopes[#scopes + 1] = 3 end
end

local probe = false
if redis.call('EXISTS', KEYS[3]) == 0 then
  local holder = redis.call('GET', KEYS[4])
  if holder and holder ~= member then return answer(0, 50, outage) end
  -- Only one call proves the credentials: a group asks again (one by one).
  if calls > 1 then return answer(0, 0, outage) end
  probe = true
end

local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
for _, scope in ipairs(scopes) do
  if limits[1 + scope * 2] > 0 then
    start = math.max(start, tonumber(redis.call('GET', KEYS[8 + scope * 3]) or '0'))
  end
end

if start - now > A.ahead_ms then return answer(0, start - now - A.ahead_ms, outage) end

for _, scope in ipairs(scopes) do
  local limit = limits[2 + scope * 2]
  if limit > 0 then
    local log, amounts = KEYS[9 + scope * 3], KEYS[10 + scope * 3]
    -- Entries that left the last sixth since the last call leave its sum: before the expiry below deletes any of them.
    local recentStart = now - window / 6
    local recentFrom = tonumber(redis.call('HGET', amounts, '__recent_from') or '')
    if not recentFrom then
      redis.call('HSET', amounts, '__recent', sumAmounts(amounts, redis.call('ZRANGEBYSCORE', log, recentStart, '+inf')), '__recent_from', recentStart)
    elseif recentStart > recentFrom then
      local left = sumAmounts(amounts, redis.call('ZRANGEBYSCORE', log, recentFrom, '(' .. recentStart))
      if left ~= 0 then redis.call('HINCRBY', amounts, '__recent', -left) end
      redis.call('HSET', amounts, '__recent_from', recentStart)
    end
    repeat
      local expired = redis.call('ZRANGEBYSCORE', log, '-inf', now - window, 'LIMIT', 0, 500)
      if #expired > 0 then
        local freed = sumAmounts(amounts, expired)
        redis.call('ZREM', log, unpack(expired))
        redis.call('HDEL', amounts, unpack(expired))
        -- (-0, the negation of 0, is sent as "-0", which HINCRBY refuses)
        if freed ~= 0 then redis.call('HINCRBY', amounts, '__total', -freed) end
      end
    until #expired < 500
    -- The whole minute, and its last sixth: a sixth of the limit per 10 s keeps the flow smooth (no
    -- minute-sized burst at the start) and, summed over six such windows, never exceeds the minute's limit.
    -- The large-call scope only bounds the large calls' share of the minute (the global scope smooths them).
    local total = tonumber(redis.call('HGET', amounts, '__total') or '0')
    local wait = roomWait(log, amounts, total, limit, now - window, window)
    if wait == 0 and scope ~= 2 then
      local sum = math.max(0, tonumber(redis.call('HGET', amounts, '__recent') or '0'))
      wait = roomWait(log, amounts, sum, limit / 6, now - window / 6, window / 6)
    end
    if wait > 0 then return answer(0, wait, outage) end
  end
end

-- During an outage's backoff only one call per probe interval goes, to find out whether it is over.
local outageLeft = redis.call('PTTL', KEYS[6])
if outageLeft > 0 and calls > 1 then return answer(0, 0, outage) end
if outageLeft > 0 and not redis.call('SET', KEYS[7], member, 'PX', probeEvery, 'NX') then
  return answer(0, math.min(outageLeft, math.max(1, redis.call('PTTL', KEYS[7]))), outage)
end

if probe then redis.call('SET', KEYS[4], member, 'PX', lease + (start - now)) end
for _, scope in ipairs(scopes) do
  local rpm = limits[1 + scope * 2]
  if rpm > 0 then
    redis.call('SET', KEYS[8 + scope * 3], start + calls * window / rpm, 'PX', 120000)
  end
  if limits[2 + scope * 2] > 0 then
    local log, amounts = KEYS[9 + scope * 3], KEYS[10 + scope * 3]
    redis.call('ZADD', log, start, member)
    redis.call('HSET', amounts, member, est)
    redis.call('HINCRBY', amounts, '__total', est)
    redis.call('HINCRBY', amounts, '__recent', est)
    redis.call('PEXPIRE', log, 180000)
    redis.call('PEXPIRE', amounts, 180000)
  end
end
local spacing = 0
for _, scope in ipairs(scopes) do
  if limits[1 + scope * 2] > 0 then spacing = math.max(spacing, window / limits[1 + scope * 2]) end
end
return answer(probe and 2 or 1, start - now, outage, tostring(spacing))
