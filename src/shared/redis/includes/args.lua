--[[
  Included by scripts (--- @include args): their named arguments, packed in ARGV[1] as one JSON object (the
  TypeScript side: packArgs in redis.ts); raw values the script writes as they are (a compressed response, a
  result's fields) come after it, from ARGV[2] on.
  namedArgs(script, spec) decodes ARGV[1] and checks it against spec before the script writes anything: spec maps
  each argument's name to its kind, "whole" (an integer from 0 to 1e15), "number", "string" or "boolean", with a
  trailing "?" when it may be left out. A missing, mistyped or unknown argument is an error naming it.
  A script answers by name too: a flat table of name, value, name, value... (namedReply in redis.ts reads it).
]]
local function namedArgs(script, spec)
  local ok, args = pcall(cjson.decode, ARGV[1] or '')
  if not ok or type(args) ~= 'table' then
    error('chatq ' .. script .. ': ARGV[1] must be a JSON object of named arguments')
  end
  for name, kind in pairs(spec) do
    local v = args[name]
    local optional = string.sub(kind, -1) == '?'
    local base = optional and string.sub(kind, 1, -2) or kind
    if v == nil or v == cjson.null then
      if not optional then error('chatq ' .. script .. ': missing argument "' .. name .. '"') end
      args[name] = nil
    elseif base == 'whole' then
      if type(v) ~= 'number' or v < 0 or v > 1e15 or v ~= math.floor(v) then
        error('chatq ' .. script .. ': argument "' .. name .. '" must be a whole number from 0 to 1e15')
      end
    elseif type(v) ~= base then
      error('chatq ' .. script .. ': argument "' .. name .. '" must be a ' .. base)
    end
  end
  for name in pairs(args) do
    if not spec[name] then error('chatq ' .. script .. ': unknown argument "' .. tostring(name) .. '"') end
  end
  return args
end

-- A whole number as Redis writes it (digits, never an exponent), for a field, a counter or a score.
local function wholeText(v)
  return string.format('%d', v)
end
