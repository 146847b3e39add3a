--[[
  Included by scripts (--- @include claim-request): claims one request for a run. claimRequest(prefix, id, now)
  returns {'run', request id, body, userid, model, history, conversation so far, attempt number (tries + 1), batch,
  on_failure, expect, project, 1 when the batch has a budget (max_cost_nano) else 0}, or {'wait', ms} when its turn
  gap has not passed (nothing claimed). A claim is not an attempt: `claims` counts runs begun.
]]
local function claimRequest(prefix, id, now)
  local key = KEY.request(prefix, id)
  local userid, model, history, prev, batch, onFailure, expect, tries, project, notBefore =
    unpack(redis.call('HMGET', key, 'userid', 'model', 'history', 'prev', 'batch', 'on_failure', 'expect', 'tries', 'project', 'not_before'))
  notBefore = tonumber(notBefore or '')
  if notBefore and notBefore > tonumber(now) then return { 'wait', notBefore - tonumber(now) } end
  redis.call('HINCRBY', key, 'claims', 1)
  redis.call('HSET', key, 'status', 'running', 'started_at', now)
  local conv = ''
  if history == 'full' and prev then
    conv = redis.call('HGET', KEY.request(prefix, prev), 'conv') or ''
  end
  local budgeted = redis.call('HEXISTS', KEY.batch(prefix, batch), 'max_cost_nano')
  return { 'run', id, redis.call('GET', KEY.requestBody(prefix, id)) or '{}', userid, model, history or 'memory', conv, (tonumber(tries) or 0) + 1, batch, onFailure or 'continue', expect or '', project or 'default', budgeted }
end
