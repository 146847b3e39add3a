--[[
  Included by scripts (--- @include served-request): which request a job serves. Its own while unfinished; once that
  is finished, the head of the same lane if finish-request.lua handed it to this job (served_by = the job id).
  servedRequest(prefix, jobId) returns the request id, or nil (nothing to serve) and 'missing' when the job's own
  request is gone. Needs "--- @include statuses" before it.
]]
local function servedRequest(prefix, jobId)
  local own = KEY.request(prefix, jobId)
  local status = redis.call('HGET', own, 'status')
  if not status then return nil, 'missing' end
  if not FINISHED_REQUEST[status] then return jobId end
  local head = redis.call('LINDEX', KEY.lane(prefix, redis.call('HGET', own, 'userid')), 0)
  if not head or redis.call('HGET', KEY.request(prefix, head), 'served_by') ~= jobId then return nil end
  status = redis.call('HGET', KEY.request(prefix, head), 'status')
  if not status or FINISHED_REQUEST[status] then return nil end
  return head
end
