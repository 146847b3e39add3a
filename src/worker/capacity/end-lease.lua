--[[
  Ends a lease (the credentials probe's), if this caller still holds it (another's is left alone: it is working now).
  Its contract is endScript's in held-lease.ts; answers ended (false when the lease is someone else's or gone).
]]
--- @include contract
if redis.call('GET', K.lease) ~= A.holder then return reply({ ended = false }) end
return reply({ ended = redis.call('DEL', K.lease) == 1 })
