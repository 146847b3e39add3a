--[[
  Which request a job serves, without claiming it (the reconciler fails it when BullMQ gave up on the job).
  KEYS: 1 the job's own request hash
  ARGV: 1 key prefix (the lane and a handed-over head: same slot), 2 the job id
  Returns the request id, or false.
]]
--- @include keys
--- @include finished-record
--- @include served-request
return servedRequest(ARGV[1], ARGV[2]) or false
