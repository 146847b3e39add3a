--[[
  Included by scripts (--- @include attempt-log): appendAttempts(log, entries) adds a run's attempt entries (JSON
  objects, comma-separated, no brackets) to a request's attempt log (JSON array text, or nil), keeping its first entry
  and its latest ones, ATTEMPT_LOG_MOST in all: a request that met thousands of 429s keeps a bounded log (the first
  entry says when its attempts began; the count of calls is the request's "attempts").
]]
local ATTEMPT_LOG_MOST = 50

local function appendAttempts(log, entries)
  local text = (log and (string.sub(log, 1, -2) .. ',') or '[') .. entries .. ']'
  local _, count = string.gsub(text, '{"at":', '')
  if count <= ATTEMPT_LOG_MOST then return text end
  local all = cjson.decode(text)
  local kept = { all[1] }
  for i = #all - ATTEMPT_LOG_MOST + 2, #all do kept[#kept + 1] = all[i] end
  return cjson.encode(kept)
end
