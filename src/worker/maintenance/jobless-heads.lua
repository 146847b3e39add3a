--[[
  Which of the lane heads the reconciler found without a job still are, read in one step: still their lane's head,
  with neither a BullMQ job of their own nor the job their lane was handed to (served_by), and not held back in their
  project's backlog (admission.lua). The reconciler's reads take several round trips: a head that finished meanwhile
  (its job done and removed, its lane gone on) would otherwise look like one whose job was lost.
  KEYS: 1 the lane set (it names the slot: every key read is in its tag)
  ARGV: 1 key prefix, then pairs: userid, request id
  Returns the ids that are still heads without a job.
]]
--- @include keys
local prefix = ARGV[1]
local jobless = {}
for i = 2, #ARGV, 2 do
  local userid, id = ARGV[i], ARGV[i + 1]
  if redis.call('LINDEX', KEY.lane(prefix, userid), 0) == id and redis.call('EXISTS', KEY.job(prefix, id)) == 0 then
    local served, project = unpack(redis.call('HMGET', KEY.request(prefix, id), 'served_by', 'project'))
    local covered = served and redis.call('EXISTS', KEY.job(prefix, served)) == 1
    if not covered and not redis.call('ZSCORE', KEY.backlog(prefix, project or 'default'), id) then
      jobless[#jobless + 1] = id
    end
  end
end
return jobless
