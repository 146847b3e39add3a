--[[
  Which request a job serves, without claiming it (the reconciler fails it when BullMQ gave up on the job).
  Its contract (keys, arguments, reply) is findServedScript's in store-scripts.ts.
]]
--- @include keys
--- @include finished-record
--- @include served-request
--- @include contract
return reply({ id = servedRequest(A.prefix, A.job) })
