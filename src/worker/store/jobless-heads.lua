--[[
  Which of the lane heads the reconciler found without a job still are, read in one step: still their lane's head,
  with neither a BullMQ job of their own nor the job their lane was handed to (served_by), not held back in their
  project's backlog (admission.lua), and not admitted to the queue within the last pass interval (the script that
  admitted it returned it to its caller, whose add may still be on the way: a moment that grows on a busy machine; a
  caller that died there is found on a later pass). The reconciler's reads take several round trips: a head that
  finished meanwhile (its job done and removed, its lane gone on) would otherwise look like one whose job was lost.
  Its contract (keys, arguments, reply) is joblessScript's in lane-repair.ts.
]]
--- @include keys
--- @include contract
local prefix, now = A.prefix, A.now
local jobless = {}
for _, head in ipairs(A.heads) do
  local userid, id = head[1], head[2]
  if redis.call('LINDEX', KEY.lane(prefix, userid), 0) == id and redis.call('EXISTS', KEY.job(prefix, id)) == 0 then
    local served, project = unpack(redis.call('HMGET', KEY.request(prefix, id), 'served_by', 'project'))
    project = project or 'default'
    local covered = served and redis.call('EXISTS', KEY.job(prefix, served)) == 1
    local admitted = tonumber(redis.call('ZSCORE', KEY.queued(prefix, project), id))
    local adding = admitted and now - admitted < A.interval_ms
    if not covered and not adding and not redis.call('ZSCORE', KEY.backlog(prefix, project), id) then
      jobless[#jobless + 1] = id
    end
  end
end
return reply({ jobless = jobless })
