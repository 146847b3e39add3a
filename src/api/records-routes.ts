import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { USAGE_DIMENSIONS } from '../shared/keys.js';
import { getRequests } from '../shared/read-store.js';
import type { StoredRequest } from '../shared/request-record.js';
import { usageCsv, usageJson, usageReport, UsageQueryError } from '../shared/usage-report.js';
import { isUuidV4 } from '../shared/userid.js';
import type { ApiDeps } from './api-deps.js';
import { ApiError } from './api-errors.js';
import { parseInput } from './zod-edge.js';

/** One request as the API shows it (no secrets are ever stored, so none can show). */
const requestObject = (r: StoredRequest) => ({
  id: r.id,
  object: 'chatq.request' as const,
  batch_id: r.batch,
  custom_id: r.customId,
  line: r.line,
  userid: r.userid,
  model: r.model,
  status: r.status,
  attempts: r.attempts,
  attempt_log: r.attemptLog,
  latency_ms: r.latencyMs,
  usage: r.usage,
  cost_usd: r.costNano === null ? null : r.costNano / 1e9,
  response: r.response,
  error: r.error,
  created_at: Math.floor(r.createdAt / 1000),
  finished_at: r.finishedAt === null ? null : Math.floor(r.finishedAt / 1000),
});

const pageQuery = z.object({ limit: z.coerce.number().int().min(1).max(100).default(20), after: z.string().max(200).optional() });
const usageQuery = z.object({
  group_by: z.enum(USAGE_DIMENSIONS as [string, ...string[]], { message: 'expected batch, user, model or day' }).default('day'),
  batch: z.string().max(200).optional(),
  from: z.string().max(10).optional(),
  to: z.string().max(10).optional(),
  format: z.enum(['json', 'csv']).default('json'),
});

/** chatq's own reads: one request, a user's requests (newest first, paged), usage and cost reports. */
export async function recordsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { redis, keys } = deps;

  app.get('/v1/requests/:id', async (req) => {
    const { id } = parseInput(z.object({ id: z.string().min(1).max(200) }), req.params);
    const [r] = await getRequests(redis, keys, [id]);
    if (!r) throw new ApiError(404, `No request ${id} (unknown, or its result expired).`, 'not_found', 'id');
    return requestObject(r);
  });

  app.get('/v1/users/:userid/requests', async (req) => {
    const { userid } = parseInput(z.object({ userid: z.string().refine(isUuidV4, { message: 'expected a UUID v4' }) }), req.params);
    const { limit, after } = parseInput(pageQuery, req.query);
    // The user's requests are kept in submission order; pages go newest first.
    const index = keys.userRequests(userid.toLowerCase());
    let last = (await redis.llen(index)) - 1;
    if (after) {
      const position = await redis.lpos(index, after);
      if (position === null) throw new ApiError(400, `after: request ${after} is not one of this user's.`, 'invalid_request', 'after');
      last = position - 1;
    }
    const ids = last < 0 ? [] : (await redis.lrange(index, Math.max(0, last - limit), last)).reverse();
    const data = (await getRequests(redis, keys, ids.slice(0, limit))).filter((r) => r !== null).map(requestObject);
    return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: ids.length > limit };
  });

  app.get('/v1/usage', async (req, reply) => {
    const q = parseInput(usageQuery, req.query);
    const by = q.group_by as (typeof USAGE_DIMENSIONS)[number];
    let rows;
    try {
      rows = await usageReport(redis, keys, { by, ...(q.batch ? { batch: q.batch } : {}), ...(q.from ? { from: q.from } : {}), ...(q.to ? { to: q.to } : {}) });
    } catch (err) {
      if (err instanceof UsageQueryError) throw new ApiError(400, err.message, 'invalid_request');
      throw err;
    }
    if (q.format === 'csv') return reply.header('content-type', 'text/csv').send(usageCsv(rows, by));
    return { object: 'list', group_by: by, data: usageJson(rows, by) };
  });
}
