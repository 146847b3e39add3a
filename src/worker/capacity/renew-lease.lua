--[[
  Extends a lease (the credentials probe's, the reconciler's) while its holder's work goes on, if it still holds it.
  Its contract is renewScript's in held-lease.ts; answers renewed (false when the lease is someone else's or gone).
]]
--- @include contract
if redis.call('GET', K.lease) ~= A.holder then return reply({ renewed = false }) end
return reply({ renewed = redis.call('PEXPIRE', K.lease, A.lease_ms) == 1 })
