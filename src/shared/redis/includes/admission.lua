--[[
  Included by scripts (--- @include admission; needs "--- @include keys" before it): fair shares between projects at
  the queue. A project's lane heads in BullMQ, waiting for a call slot (KEY.queued: request id -> when admitted), are
  at most its allowance: its weight's share of the capacity (the call slots of the workers, with some to spare), among
  the projects that have heads waiting here (KEY.queuedProjects). Heads past it wait in the project's backlog
  (KEY.backlog: head -> when it may go, first in first out) and go to BullMQ as the project's queued heads are
  claimed; a head whose call found no capacity waits there too, until its time (requeue-request.lua), out of BullMQ. So the wait list holds
  each project's heads in proportion to its weight, and a project with many users takes no more call slots than one
  with few; within a project, users are served in turn as before.
  `admission` is the scripts' argument (a table: Admission in admission.ts): {c = capacity (heads one project alone
  may have queued), w = {project = weight} (1 when absent)}; admissionOf checks it.
]]
local ADMISSION_LEAST = 8

local function admissionOf(a)
  if type(a) ~= 'table' or type(a.c) ~= 'number' or a.c < 1 or type(a.w) ~= 'table' then
    error('chatq admission: expected {c = capacity, w = {project = weight}}')
  end
  return a
end

-- The most heads `project` may have queued now: its weight's share of the capacity among the projects with heads here.
local function allowanceOf(prefix, project, admission)
  local mine = tonumber(admission.w[project]) or 1
  local total, listed = 0, false
  for _, p in ipairs(redis.call('SMEMBERS', KEY.queuedProjects(prefix))) do
    total = total + (tonumber(admission.w[p]) or 1)
    if p == project then listed = true end
  end
  if not listed then total = total + mine end
  return math.max(ADMISSION_LEAST, math.ceil(admission.c * mine / total))
end

-- Admits lane heads of `project` (ids, in order): returns those that go to BullMQ now (the caller adds their jobs);
-- the others wait in the project's backlog, in order.
local function admit(prefix, project, ids, now, admission)
  if #ids == 0 then return {} end
  local queued, backlog = KEY.queued(prefix, project), KEY.backlog(prefix, project)
  redis.call('SADD', KEY.queuedProjects(prefix), project)
  local room = allowanceOf(prefix, project, admission) - redis.call('ZCARD', queued)
  local admitted = {}
  for _, id in ipairs(ids) do
    if redis.call('ZSCORE', queued, id) then
      admitted[#admitted + 1] = id
    elseif room > 0 then
      redis.call('ZADD', queued, now, id)
      redis.call('ZREM', backlog, id)
      admitted[#admitted + 1] = id
      room = room - 1
    else
      redis.call('ZADD', backlog, 'NX', now, id)
    end
  end
  return admitted
end

-- Queued heads of `project` left the queue (a job claimed its request, waits out a turn gap, or ended): the backlog
-- refills the project's allowance. Returns the heads that go to BullMQ now.
local function dequeue(prefix, project, ids, now, admission)
  local queued, backlog = KEY.queued(prefix, project), KEY.backlog(prefix, project)
  if #ids > 0 then redis.call('ZREM', queued, unpack(ids)) end
  local refill = {}
  local room = allowanceOf(prefix, project, admission) - redis.call('ZCARD', queued)
  if room > 0 and redis.call('EXISTS', backlog) == 1 then
    local due = redis.call('ZRANGEBYSCORE', backlog, '-inf', now, 'LIMIT', 0, room)
    if #due > 0 then redis.call('ZREM', backlog, unpack(due)) end
    for _, head in ipairs(due) do
      redis.call('ZADD', queued, now, head)
      refill[#refill + 1] = head
    end
  end
  if redis.call('EXISTS', queued) == 0 and redis.call('EXISTS', backlog) == 0 then
    redis.call('SREM', KEY.queuedProjects(prefix), project)
  end
  return refill
end
