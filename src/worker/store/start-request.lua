--[[
  Claims the request a job serves for one run (one or more upstream calls). A job serves its own request, or, once
  that is finished, the head of the same lane when finish-request.lua handed it over (served_by = this job): a lane
  goes on in the job that served it, without a new BullMQ job per turn (finish-request.lua then claims that head
  itself, in the same round trip; this script is for a job's first run, and for a run again after a crash). A
  finished request is not run again (a double add is harmless). `attempts` counts the upstream calls (written when
  the run ends), `tries` the failed attempts that count toward the attempt limit.
  Its contract (keys, arguments, reply) is startScript's in request-store.ts.
  The job's request leaves its project's queued heads (whatever the claim's answer: it runs, waits out a turn gap as
  a delayed job, or is done), and heads of the project's backlog take its place.
  Answers refill (heads to add to BullMQ, from the backlog) and claim (claimRequest's answer: claim-request.lua; or
  state "finished" / "missing").
]]
--- @include keys
--- @include statuses
--- @include finished-record
--- @include served-request
--- @include claim-request
--- @include admission
--- @include contract
local prefix = A.prefix
if A.lease_ms == 0 then error('chatq start-request: the lease must be whole ms') end
local admission = admissionOf(A.admission)
-- The job no longer waits in the queue: its request (and the one it serves, which a run put back: requeue-request.lua)
-- leave their project's queued heads, and the backlog refills them.
local id, gone = servedRequest(prefix, A.job)
-- The project of the request it serves (the job's own may be finished: its hash is gone).
local project = redis.call('HGET', KEY.request(prefix, id or A.job), 'project') or 'default'
local refill = dequeue(prefix, project, { A.job, id }, A.now, admission)
if not id then return reply({ refill = refill, claim = { state = gone or 'finished' } }) end
return reply({ refill = refill, claim = claimRequest(prefix, id, wholeText(A.now), nil, A.lease_ms) })
