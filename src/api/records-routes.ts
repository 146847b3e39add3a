import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { PROJECT_NAME } from '../shared/config-env.js';
import { isRequestId } from '../shared/ids.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { API_REQUEST_FIELDS, requestValues } from '../shared/batches/batch-output.js';
import { getRequests } from '../shared/batches/read-store.js';
import type { StoredRequest } from '../shared/request-record.js';
import { sees } from '../shared/scope.js';
import {
  REPORT_DIMENSIONS,
  usageCsv,
  usageJson,
  usageReport,
  UsageNotFound,
  UsageQueryError,
  type ReportDimension,
} from '../shared/reports/usage-report.js';
import { listDeliveries } from '../webhooks/webhook-delivery.js';
import type { ApiDeps } from '../http/api-deps.js';
import { ApiError } from '../http/api-errors.js';
import { idParams, typed, useridParams } from '../http/zod-edge.js';
import { listPage } from './list-page.js';

/** One request as the API shows it (no secrets are ever stored, so none can show). */
function requestObject(r: StoredRequest) {
  const { id, ...rest } = requestValues(r, API_REQUEST_FIELDS);
  return { id, object: 'chatq.request' as const, ...rest };
}

const deliveriesQuery = z.object({ limit: z.coerce.number().int().min(1).max(1_000).default(100) });
const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  after: z.string().max(200).optional(),
  project: z.string().regex(PROJECT_NAME).optional(),
});
const usageQuery = z.object({
  group_by: z
    .enum(REPORT_DIMENSIONS as [string, ...string[]], { message: 'expected batch, user, model, day or month' })
    .default('day'),
  batch: z.string().max(200).optional(),
  from: z.string().max(10).optional(),
  to: z.string().max(10).optional(),
  format: z.enum(['json', 'csv']).default('json'),
});

/** chatq's own reads, within the token's project: one request, a user's requests (newest first, paged), usage and cost reports, webhook deliveries. */
export async function recordsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { redis, keys } = deps;
  const api = typed(app);

  api.get('/v1/requests/:id', { schema: { params: idParams } }, async (req) => {
    const { id } = req.params;
    const [r] = isRequestId(id) ? await getRequests(redis, keys, [id]) : [null];
    const project = r ? await redis.hget(keys.batch(r.batch), 'project') : null;
    if (!r || !sees(req.principal.scope, project))
      throw new ApiError(404, `No request ${id} (unknown, or its result expired).`, 'not_found', 'id');
    return requestObject(r);
  });

  api.get('/v1/users/:userid/requests', { schema: { params: useridParams, querystring: pageQuery } }, async (req) => {
    const { userid } = req.params;
    const { limit, after, project } = req.query;
    const { scope } = req.principal;
    // A user's requests are listed per project (an admin names one; the default project otherwise).
    const index = keys
      .forUser(userid.toLowerCase())
      .userRequests(scope.project ?? project ?? DEFAULT_PROJECT, userid.toLowerCase());
    let last = (await redis.llen(index)) - 1;
    if (after) {
      const position = isRequestId(after) ? await redis.lpos(index, after) : null;
      if (position === null)
        throw new ApiError(400, `after: request ${after} is not one of this user's.`, 'invalid_request', 'after');
      last = position - 1;
    }
    const ids = last < 0 ? [] : (await redis.lrange(index, Math.max(0, last - limit), last)).reverse();
    const data = (await getRequests(redis, keys, ids.slice(0, limit))).filter((r) => r !== null).map(requestObject);
    return listPage(data, ids.length > limit);
  });

  api.get('/v1/webhooks/deliveries', { schema: { querystring: deliveriesQuery } }, async (req) => {
    const { limit } = req.query;
    const data = await listDeliveries(redis, keys, (project) => sees(req.principal.scope, project), limit);
    return { object: 'list', data };
  });

  api.get('/v1/usage', { schema: { querystring: usageQuery } }, async (req, reply) => {
    const q = req.query;
    const by = q.group_by as ReportDimension;
    let rows: Awaited<ReturnType<typeof usageReport>>;
    try {
      rows = await usageReport(redis, keys, req.principal.scope, {
        by,
        ...(q.batch ? { batch: q.batch } : {}),
        ...(q.from ? { from: q.from } : {}),
        ...(q.to ? { to: q.to } : {}),
      });
    } catch (err) {
      if (err instanceof UsageQueryError) throw new ApiError(400, err.message, 'invalid_request');
      if (err instanceof UsageNotFound) throw new ApiError(404, err.message, 'not_found', 'batch');
      throw err;
    }
    if (q.format === 'csv') return reply.header('content-type', 'text/csv').send(usageCsv(rows, by));
    return { object: 'list', group_by: by, data: usageJson(rows, by) };
  });
}
