import { readFileContent } from '../shared/files/file-store.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { startBackgroundWorker, type BackgroundWorker } from './background-worker.js';
import { getSchedule, SCHEDULE_QUEUE, type ScheduleJob } from '../shared/files/schedules.js';
import type { ProducerServiceOptions } from './producer-context.js';
import { submitBatch } from './submit-batch.js';

/** Turns each firing of a schedule into new batches of its suite, named "<schedule>@<UTC time>[/<model>]". */
export function startScheduleRunner(opts: ProducerServiceOptions): BackgroundWorker {
  const { redis, keys, logger } = opts;
  return startBackgroundWorker<ScheduleJob>(
    opts,
    SCHEDULE_QUEUE,
    async (job) => {
      const spec = await getSchedule(redis, keys, job.data.schedule);
      if (!spec) return;
      const firedAt = new Date(job.timestamp).toISOString();
      const batches: string[] = [];
      for (const model of spec.models.length ? spec.models : [undefined]) {
        const name = `${spec.name}@${firedAt}${model ? `/${model}` : ''}`;
        const result = await submitBatch(opts, () => readFileContent(redis, keys, spec.file_id), {
          source: spec.source,
          project: spec.project ?? DEFAULT_PROJECT,
          name,
          metadata: { schedule: spec.name, fired_at: firedAt, ...(model ? { model } : {}) },
          ...(model ? { forceModel: model } : {}),
          ...(spec.fresh_users ? { userSalt: name } : {}),
          ...(spec.max_cost_usd ? { maxCostNano: Math.round(spec.max_cost_usd * 1e9) } : {}),
          ...(spec.min_pass !== undefined ? { minPass: spec.min_pass } : {}),
        });
        logger.info(
          { schedule: spec.name, batch: result.batchId, requests: result.acceptedRequests },
          'scheduled run enqueued',
        );
        batches.push(result.batchId);
      }
      return batches;
    },
    (job) => ({ schedule: job?.data.schedule }),
  );
}
