import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { readBatchRequests } from '../shared/batches/read-store.js';
import { benchmarkAnswers, benchmarkRun } from '../shared/reports/benchmark-report.js';
import type { ApiDeps } from '../http/api-deps.js';
import { ApiError } from '../http/api-errors.js';
import { loadVisibleBatch } from '../http/visible-records.js';
import { idParams, typed } from '../http/zod-edge.js';

/**
 * A memory benchmark run's figures and answers (chatq's own routes beside the Batch API's):
 * GET /v1/batches/:id/benchmark, its paper's table (as `chatq eval` gives it); GET /v1/batches/:id/benchmark/answers,
 * its answers in the file its official scorer reads (as `chatq results --format longmemeval|locomo` writes it).
 */
export async function benchmarkRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { redis, keys } = deps;
  const api = typed(app);
  const run = async (scope: Parameters<typeof loadVisibleBatch>[1], id: string) => {
    const batch = await loadVisibleBatch(
      deps,
      scope,
      id,
      () => new ApiError(404, `No batch ${id}.`, 'not_found', 'id'),
    );
    const found = await benchmarkRun(redis, keys, batch, deps.config.resultTtlS);
    if (!found) throw new ApiError(404, `Batch ${id} is no memory benchmark run.`, 'not_found', 'id');
    return found.report;
  };

  api.get('/v1/batches/:id/benchmark', { schema: { params: idParams } }, async (req) => {
    const { id } = req.params;
    return { object: 'chatq.benchmark_report', batch: id, ...(await run(req.principal.scope, id)) };
  });

  api.get('/v1/batches/:id/benchmark/answers', { schema: { params: idParams } }, async (req, reply) => {
    const { id } = req.params;
    const report = await run(req.principal.scope, id);
    return reply
      .header('content-type', report.benchmark === 'longmemeval' ? 'application/jsonl' : 'application/json')
      .header(
        'content-disposition',
        `attachment; filename="${id}.${report.benchmark === 'longmemeval' ? 'jsonl' : 'json'}"`,
      )
      .send(Readable.from(benchmarkAnswers(readBatchRequests(redis, keys, id))));
  });
}
