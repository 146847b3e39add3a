--[[
  Reserves capacity for one upstream call under every limit that applies (global and per model), shared by all
  worker processes. Time is Redis's clock, so workers on other machines agree on it.
  - requests per minute: GCRA with no burst: calls are spaced 60 s / rpm apart, so no sliding minute ever holds
    more than rpm calls; a reserved slot may lie in the future (the caller sleeps until it).
  - tokens per minute: a sliding one-minute log of estimated tokens (corrected by settle-capacity.lua);
    when the log is full nothing is reserved and the caller waits.
  - a pause (after the upstream answered 429) holds every reservation until it ends.
  KEYS: 1 pause-until key, then per scope (global, model): request TAT key, token log zset, token amount hash
  ARGV: 1 member (unique per call), 2 estimated tokens, 3 headroom (fraction of each window kept free),
        4 global rpm, 5 global tpm, 6 model rpm, 7 model tpm (0 = no limit)
  Returns {1, ms to wait before calling} when reserved, or {0, ms to wait before asking again}.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local member, est, headroom = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local window = 60000 * (1 + headroom)

local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
for scope = 0, 1 do
  if tonumber(ARGV[4 + scope * 2]) > 0 then
    start = math.max(start, tonumber(redis.call('GET', KEYS[2 + scope * 3]) or '0'))
  end
end

for scope = 0, 1 do
  local limit = tonumber(ARGV[5 + scope * 2])
  if limit > 0 then
    local log, amounts = KEYS[3 + scope * 3], KEYS[4 + scope * 3]
    repeat
      local expired = redis.call('ZRANGEBYSCORE', log, '-inf', now - window, 'LIMIT', 0, 500)
      if #expired > 0 then
        local freed = 0
        for _, v in ipairs(redis.call('HMGET', amounts, unpack(expired))) do freed = freed + (tonumber(v) or 0) end
        redis.call('ZREM', log, unpack(expired))
        redis.call('HDEL', amounts, unpack(expired))
        redis.call('HINCRBY', amounts, '__total', -freed)
      end
    until #expired < 500
    local total = tonumber(redis.call('HGET', amounts, '__total') or '0')
    if total > 0 and total + est > limit then
      local need, freed = total + est - limit, 0
      local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
      local waitUntil = now + 1000
      for i = 1, #entries, 2 do
        freed = freed + (tonumber(redis.call('HGET', amounts, entries[i])) or 0)
        if freed >= need then
          waitUntil = tonumber(entries[i + 1]) + window
          break
        end
      end
      return { 0, math.max(1, waitUntil - now) }
    end
  end
end

for scope = 0, 1 do
  local rpm = tonumber(ARGV[4 + scope * 2])
  if rpm > 0 then
    redis.call('SET', KEYS[2 + scope * 3], start + window / rpm, 'PX', 120000)
  end
  if tonumber(ARGV[5 + scope * 2]) > 0 then
    local log, amounts = KEYS[3 + scope * 3], KEYS[4 + scope * 3]
    redis.call('ZADD', log, start, member)
    redis.call('HSET', amounts, member, est)
    redis.call('HINCRBY', amounts, '__total', est)
    redis.call('PEXPIRE', log, 180000)
    redis.call('PEXPIRE', amounts, 180000)
  end
end
return { 1, start - now }
