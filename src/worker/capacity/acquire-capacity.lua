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
  - requests per window (a minute): GCRA with no burst: calls are spaced window / rpm apart, so no sliding window
    ever holds more than rpm calls; a reserved slot may lie in the future, at most ahead_ms (the caller sleeps until it); one
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
  Its contract (keys, arguments, reply) is acquireScript's in acquire-call.ts: the gate's keys (pauses, credentials,
  outage), then each scope's by name (K.<scope>_requests: its request TAT, _log: its token log, _amounts: the log's
  amounts; a scope a call does not go through is named and never touched), and the projects asking. The call says
  which scopes apply, with their limits over their windows (a share scope's: the project's weight's share of them).
  Every argument is checked before the first write: a bad one is an error that leaves nothing behind.
  Answers by name: state (1 reserved, 2 reserved as the probe, 0 not reserved, -1 the queue is paused), wait_ms
  (reserved: before calling; not reserved: before asking again), outage (1 while an outage is on record: a success
  should end it), spacing_ms (reserved: the ms between the group's request slots), global_tokens (the global token
  log's total after this ask: what a worker bounds its own share by while the base tag is away, local-share.ts).
]]
--- @include contract
local MAX_TOKENS = 1e12
if A.tokens > MAX_TOKENS then error('chatq acquire-capacity: argument "tokens" must be at most ' .. MAX_TOKENS) end
local est, headroom = A.tokens, A.headroom
if headroom < 0 or headroom > 0.5 then error('chatq acquire-capacity: argument "headroom" must be within 0..0.5') end
-- Each scope by name: its keys (K.<name>_requests, _log, _amounts) and its limits (a share's: the project's, below).
for i, s in ipairs(A.scopes) do
  if type(s.name) ~= 'string' or not K[s.name .. '_requests'] then error('chatq acquire-capacity: scope ' .. i .. ' is not one of the contract\'s') end
  for _, limit in ipairs({ 'rpm', 'tpm', 'window_ms' }) do
    local v = s[limit]
    if type(v) ~= 'number' or v < 0 or v > MAX_TOKENS or v % 1 ~= 0 then error('chatq acquire-capacity: scope ' .. s.name .. ': "' .. limit .. '" must be a whole number') end
  end
  if s.window_ms < 1 then error('chatq acquire-capacity: scope ' .. s.name .. ': its window must be at least 1 ms') end
end
if A.project == '' or A.active_ms < 1 then error('chatq acquire-capacity: a project and active_ms are needed') end
local lease, probeEvery, calls = A.probe_lease_ms, A.outage_probe_ms, A.calls
if calls < 1 or calls > 10000 then error('chatq acquire-capacity: argument "calls" must be at least 1 (and at most 10000)') end
if lease == 0 or probeEvery == 0 or lease > 86400000 or probeEvery > 86400000 then
  error('chatq acquire-capacity: leases must be from 1 ms to a day')
end
local member = A.member
local function answer(state, waitMs, outage, spacing)
  local tokens = tonumber(redis.call('HGET', K.global_amounts, '__total') or '0') or 0
  return reply({ state = state, wait_ms = waitMs, outage = outage, spacing_ms = spacing or 0, global_tokens = tokens })
end

if redis.call('EXISTS', K.paused) == 1 then return answer(-1, 0, 0) end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local outage = redis.call('EXISTS', K.outage)

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

-- The projects asking now share the global limits by weight: a share scope applies while more than one asks.
redis.call('ZADD', K.projects, now, A.project)
redis.call('ZREMRANGEBYSCORE', K.projects, '-inf', now - A.active_ms)
redis.call('PEXPIRE', K.projects, A.active_ms * 2)
local asking = redis.call('ZRANGE', K.projects, 0, -1)
local share = 0
if #asking > 1 then
  local total, mine = 0, tonumber(A.weights[A.project]) or 1
  for _, p in ipairs(asking) do total = total + (tonumber(A.weights[p]) or 1) end
  share = mine / total
end
-- The scopes in play: their keys and limits, and the length of their window (with its headroom).
local scopes = {}
for _, s in ipairs(A.scopes) do
  local rpm, tpm = s.rpm, s.tpm
  if s.share then rpm, tpm = rpm * share, tpm * share end
  if rpm > 0 or tpm > 0 then
    scopes[#scopes + 1] = {
      requests = K[s.name .. '_requests'], log = K[s.name .. '_log'], amounts = K[s.name .. '_amounts'],
      rpm = rpm, tpm = tpm, window = s.window_ms * (1 + headroom), smooth = s.smooth,
    }
  end
end

local probe = false
if redis.call('EXISTS', K.credentials_proven) == 0 then
  local holder = redis.call('GET', K.credentials_probe)
  if holder and holder ~= member then return answer(0, 50, outage) end
  -- Only one call proves the credentials: a group asks again (one by one).
  if calls > 1 then return answer(0, 0, outage) end
  probe = true
end

local start = math.max(now, tonumber(redis.call('GET', K.pause_until) or '0'))
for _, s in ipairs(scopes) do
  if s.rpm > 0 then start = math.max(start, tonumber(redis.call('GET', s.requests) or '0')) end
end

if start - now > A.ahead_ms then return answer(0, start - now - A.ahead_ms, outage) end

for _, s in ipairs(scopes) do
  if s.tpm > 0 then
    local log, amounts, window = s.log, s.amounts, s.window
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
    -- The whole window, and its last sixth: a sixth of the limit per sixth of the window keeps the flow smooth (no
    -- window-sized burst at the start) and, summed over six such windows, never exceeds the window's limit.
    -- A scope not smoothed (the large calls') only bounds its calls' share of the window (the global scope smooths them).
    local total = tonumber(redis.call('HGET', amounts, '__total') or '0')
    local wait = roomWait(log, amounts, total, s.tpm, now - window, window)
    if wait == 0 and s.smooth then
      local sum = math.max(0, tonumber(redis.call('HGET', amounts, '__recent') or '0'))
      wait = roomWait(log, amounts, sum, s.tpm / 6, now - window / 6, window / 6)
    end
    if wait > 0 then return answer(0, wait, outage) end
  end
end

-- During an outage's backoff only one call per probe interval goes, to find out whether it is over.
local outageLeft = redis.call('PTTL', K.outage_until)
if outageLeft > 0 and calls > 1 then return answer(0, 0, outage) end
if outageLeft > 0 and not redis.call('SET', K.outage_probe, member, 'PX', probeEvery, 'NX') then
  return answer(0, math.min(outageLeft, math.max(1, redis.call('PTTL', K.outage_probe))), outage)
end

if probe then redis.call('SET', K.credentials_probe, member, 'PX', lease + (start - now)) end
local spacing = 0
for _, s in ipairs(scopes) do
  if s.rpm > 0 then
    redis.call('SET', s.requests, start + calls * s.window / s.rpm, 'PX', math.ceil(2 * s.window))
    spacing = math.max(spacing, s.window / s.rpm)
  end
  if s.tpm > 0 then
    redis.call('ZADD', s.log, start, member)
    redis.call('HSET', s.amounts, member, est)
    redis.call('HINCRBY', s.amounts, '__total', est)
    redis.call('HINCRBY', s.amounts, '__recent', est)
    redis.call('PEXPIRE', s.log, math.ceil(3 * s.window))
    redis.call('PEXPIRE', s.amounts, math.ceil(3 * s.window))
  end
end
return answer(probe and 2 or 1, start - now, outage, spacing)
