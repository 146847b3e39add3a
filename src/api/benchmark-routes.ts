import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { readBatchRequests } from '../shared/batches/read-store.js';
import { benchmarkAnswers, benchmarkRun } from '../shared/reports/benchmark-report.js';
import type { ApiDeps } from '../http/api-deps.js';
import { ApiError } from '../http/api-errors.js';
import { loadVisibleBatch } from '../http/visible-records.js';
import { parseInput } from '../http/zod-edge.js';

const idParams = z.object({ id: z.string().min(1).max(200) });

/**
 * A memory benchmark run's figures and answers (chatq's own routes beside the Batch API's):
 * GET /v1/batches/:id/benchmark, its paper's table (as `chatq eval` gives it); GET /v1/batches/:id/benchmark/answers,
 * its answers in the file its official scorer reads (as `chatq results --format longmemeval|locomo` writes it).
 */
export async function benchmarkRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { redis, keys } = deps;
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

  app.get('/v1/batches/:id/benchmark', async (req) => {
    const { id } = parseInput(idParams, req.params);
    return { object: 'chatq.benchmark_report', batch: id, ...(await run(req.principal.scope, id)) };
  });

  app.get('/v1/batches/:id/benchmark/answers', async (req, reply) => {
    const { id } = parseInput(idParams, req.params);
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
