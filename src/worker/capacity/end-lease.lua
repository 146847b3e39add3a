--[[
  Ends a lease (the credentials probe's), if this caller still holds it (another's is left alone: it is working now).
  KEYS: 1 the lease (its value: the holder)
  ARGV: 1 holder
  Returns 1 when ended, 0 when the lease is someone else's or gone.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
