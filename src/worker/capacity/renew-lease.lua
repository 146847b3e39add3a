--[[
  Extends a lease (the credentials probe's, the reconciler's) while its holder's work goes on, if it still holds it.
  KEYS: 1 the lease (its value: the holder)
  ARGV: 1 holder, 2 lease (ms)
  Returns 1 when renewed, 0 when the lease is someone else's or gone.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
