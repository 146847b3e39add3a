--[[
  Refills the projects' queued heads (admission.lua) from their backlogs: the heads that are due go to BullMQ up to
  each project's allowance (a head whose call found no capacity waits there until its time, and a project none of
  whose heads is claimed meanwhile has nothing else to refill it). First it repairs them: a head counted as queued
  whose BullMQ job is gone (a crash between a script and its add, a job removed by hand) no longer counts. Only heads
  admitted before `before` are looked at (a job is added just after its admission).
  Its contract is refillScript's in backlog-refills.ts. Answers refill (the heads to add to BullMQ, from the
  backlogs) and next_due_ms (in how many ms the next held-back head falls due; absent when none).
]]
--- @include keys
--- @include admission
--- @include contract
local prefix, jobKey, now, before = A.prefix, A.job_key, A.now, A.before
if string.sub(jobKey, 1, #prefix) ~= prefix then error('chatq refill-queues: job keys outside the prefix') end
if K.projects ~= KEY.queuedProjects(prefix) then error('chatq refill-queues: the projects key must be the prefix\'s') end
local admission = admissionOf(A.admission)
local refill, soonest = {}, nil
for _, project in ipairs(redis.call('SMEMBERS', K.projects)) do
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
return reply({ refill = refill, next_due_ms = soonest and soonest - now })
