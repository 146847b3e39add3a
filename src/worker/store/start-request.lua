--[[
  Claims the request a job serves for one run (one or more upstream calls). A job serves its own request, or, once
  that is finished, the head of the same lane when finish-request.lua handed it over (served_by = this job): a lane
  goes on in the job that served it, without a new BullMQ job per turn (finish-request.lua then claims that head
  itself, in the same round trip; this script is for a job's first run, and for a run again after a crash). A
  finished request is not run again (a double add is harmless). `attempts` counts the upstream calls (written when
  the run ends), `tries` the failed attempts that count toward the attempt limit.
  KEYS: 1 the job's own request hash (its body is the string beside it, <request key>:body)
  ARGV: 1 now (ms), 2 key prefix (the lane, a handed-over head, the previous turn of a "full" history script: same
        slot), 3 the job id, 4 the call's lease (ms: timeout and margin) that the claim takes for the run's first call
        ("": begin-call.lua takes it), 5 the admission (admission.lua)
  The job's request leaves its project's queued heads (whatever the claim's answer: it runs, waits out a turn gap as
  a delayed job, or is done), and heads of the project's backlog take its place.
  Returns { heads to add to BullMQ (from the backlog), claimRequest's answer (claim-request.lua) or {'finished'} /
  {'missing'} }.
]]
--- @include keys
--- @include statuses
--- @include finished-record
--- @include served-request
--- @include claim-request
--- @include admission
local prefix = ARGV[2]
local leaseArg = ARGV[4] or ''
local leaseMs = leaseArg ~= '' and tonumber(leaseArg) or nil
if leaseArg ~= '' and (not leaseMs or leaseMs < 1 or leaseMs ~= math.floor(leaseMs)) then error('chatq start-request: the lease must be whole ms') end
local admission = admissionOf(ARGV[5] or '')
-- The job no longer waits in the queue: its request (and the one it serves, which a run put back: requeue-request.lua)
-- leave their project's queued heads, and the backlog refills them.
local id, gone = servedRequest(prefix, ARGV[3])
-- The project of the request it serves (the job's own may be finished: its hash is gone).
local project = redis.call('HGET', KEY.request(prefix, id or ARGV[3]), 'project') or 'default'
local refill = dequeue(prefix, project, { ARGV[3], id }, tonumber(ARGV[1]), admission)
if not id then return { refill, { gone or 'finished' } } end
return { refill, claimRequest(prefix, id, ARGV[1], nil, leaseMs) }
