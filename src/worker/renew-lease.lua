--[[
  Extends the credentials probe lease while its call is in flight, if this caller still holds it.
  KEYS: 1 probe holder
  ARGV: 1 member, 2 lease (ms)
  Returns 1 when renewed, 0 when the lease is someone else's or gone.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
