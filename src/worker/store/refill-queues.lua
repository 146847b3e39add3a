--[[
  Refills the projects' queued heads (admission.lua) from their backlogs: the heads that are due go to BullMQ up to
  each project's allowance (a head whose call found no capacity waits there until its time, and a project none of
  whose heads is claimed meanwhile has nothing else to refill it). First it repairs them: a head counted as queued
  whose BullMQ job is gone (a crash between a script and its add, a job removed by hand) no longer counts. Only heads
  admitted before `before` are looked at (a job is added just after its admission).
  KEYS: 1 the projects with heads queued or held back (named so that a cluster routes the script to its slot)
  ARGV: 1 key prefix, 2 what comes before a request id in its BullMQ job's key, 3 now (ms), 4 admitted before (ms),
        5 the admission (admission.lua)
  Returns {the heads to add to BullMQ (from the backlogs), in how many ms the next held-back head falls due ("" when
  none)}.
]]
--- @include keys
--- @include admission
local prefix, jobKey, now, before = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if not now or not before then error('chatq refill-queues: bad times') end
if string.sub(jobKey, 1, #prefix) ~= prefix then error('chatq refill-queues: job keys outside the prefix') end
if KEYS[1] ~= KEY.queuedProjects(prefix) then error('chatq refill-queues: KEYS[1] must be the projects of the prefix') end
local admission = admissionOf(ARGV[5])
local refill, soonest = {}, nil
for _, project in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEY.queued(prefix, project), '-inf', before, 'LIMIT', 0, 1000)) do
    if redis.call('EXISTS', jobKey .. id) == 0 then
      for _, head in ipairs(dequeue(prefix, project, { id }, now, admission)) do refill[#refill + 1] = head end
    end
  end
  -- A project whose heads have all gone (or a backlog with room to spare) refills here too.
  for _, head in ipairs(dequeue(prefix, project, {}, now, admission)) do refill[#refill + 1] = head end
  local nextDue = redis.call('ZRANGEBYSCORE', KEY.backlog(prefix, project), '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if nextDue[2] and (not soonest or tonumber(nextDue[2]) < soonest) then soonest = tonumber(nextDue[2]) end
end
return { refill, soonest and tostring(soonest - now) or '' }
