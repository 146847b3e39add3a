--[[
  Included by scripts (--- @include served-request): which request a job serves. Its own while unfinished; once that
  is finished, the head of the same lane if finish-request.lua handed it to this job (served_by = the job id).
  servedRequest(prefix, jobId) returns the request id, or nil (nothing to serve) and 'missing' when the job's own
  request is gone. Needs "--- @include finished-record" before it.
]]
local function servedRequest(prefix, jobId)
  local status, userid = unpack(redis.call('HMGET', KEY.request(prefix, jobId), 'status', 'userid'))
  -- A request's hash is there until it finishes (its record then replaces it).
  if status then return jobId end
  if not status then
    local finished = finishedRecord(prefix, jobId)
    if not finished then return nil, 'missing' end
    userid = finished[AT.userid]
  end
  local head = redis.call('LINDEX', KEY.lane(prefix, userid), 0)
  if not head or redis.call('HGET', KEY.request(prefix, head), 'served_by') ~= jobId then return nil end
  status = redis.call('HGET', KEY.request(prefix, head), 'status')
  if not status then return nil end
  return head
end
