--[[
  Repairs the projects' queued heads (admission.lua): a head counted as queued whose BullMQ job is gone (a crash
  between a script and its add, a job removed by hand) no longer counts, and the project's backlog refills its place.
  Only heads admitted before `before` are looked at (a job is added just after its admission).
  ARGV: 1 key prefix, 2 what comes before a request id in its BullMQ job's key, 3 now (ms), 4 admitted before (ms),
        5 the admission (admission.lua)
  Returns the heads to add to BullMQ (from the backlogs).
]]
--- @include keys
--- @include admission
local prefix, jobKey, now, before = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if not now or not before then error('chatq prune-queued: bad times') end
if string.sub(jobKey, 1, #prefix) ~= prefix then error('chatq prune-queued: job keys outside the prefix') end
local admission = admissionOf(ARGV[5])
local refill = {}
for _, project in ipairs(redis.call('SMEMBERS', KEY.queuedProjects(prefix))) do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEY.queued(prefix, project), '-inf', before, 'LIMIT', 0, 1000)) do
    if redis.call('EXISTS', jobKey .. id) == 0 then
      for _, head in ipairs(dequeue(prefix, project, id, now, admission)) do refill[#refill + 1] = head end
    end
  end
  -- A project whose heads have all gone (or a backlog with room to spare) refills here too.
  for _, head in ipairs(dequeue(prefix, project, '', now, admission)) do refill[#refill + 1] = head end
end
return refill
