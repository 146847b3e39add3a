import { readFileContent } from '../shared/files/file-store.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { startBackgroundWorker, type BackgroundWorker } from './background-worker.js';
import {
  getSchedule,
  SCHEDULE_QUEUE,
  saveScheduleRuns,
  type ScheduleJob,
  type ScheduleSpec,
  scheduleRuns,
} from '../shared/files/schedules.js';
import { batchEnded } from '../shared/batch-record.js';

/** How long a firing's import may hold its schedule before another firing may run it (a killed runner's lapses). */
const FIRING_LEASE_MS = 10 * 60_000;
import type { ProducerServiceOptions } from './producer-context.js';
import { submitBatch } from './submit-batch.js';

/** Turns each firing of a schedule into new batches of its suite, named "<schedule>@<UTC time>[/<model>]". */
export function startScheduleRunner(opts: ProducerServiceOptions): BackgroundWorker {
  const { redis, keys, logger } = opts;
  const runner = startBackgroundWorker<ScheduleJob>(
    opts,
    SCHEDULE_QUEUE,
    async (job) => {
      const id = job.data.schedule;
      const spec = await getSchedule(redis, keys, id);
      if (!spec) return;
      // A firing while the previous run is still being imported or at work is skipped and counted, not stacked.
      const runs = await scheduleRuns(redis, keys, id);
      const firing = keys.scheduleFiring(id);
      const held = (await redis.set(firing, job.id ?? '1', 'PX', FIRING_LEASE_MS, 'NX')) !== null;
      if (!held || (await anyOpen(runs.batches))) {
        if (held) await redis.del(firing);
        await saveScheduleRuns(redis, keys, id, { ...runs, skipped: runs.skipped + 1 });
        logger.warn(
          { schedule: spec.name, running: runs.batches },
          'scheduled run skipped: the previous run is still going',
        );
        return;
      }
      try {
        return await fire(spec, job.timestamp, id);
      } finally {
        await redis.del(firing);
      }
    },
    (job) => ({ schedule: job?.data.schedule }),
  );
  return runner;

  /** Whether any of these batches has not ended (a run still going). */
  async function anyOpen(batchIds: string[]): Promise<boolean> {
    const statuses = await Promise.all(batchIds.map((b) => redis.hget(keys.batch(b), 'status')));
    return statuses.some((s) => s !== null && !batchEnded(s));
  }

  /** One firing: a batch of the suite per model; each is recorded as the schedule's latest run as soon as it exists. */
  async function fire(spec: ScheduleSpec, firedAtMs: number, id: string): Promise<string[]> {
    const firedAt = new Date(firedAtMs).toISOString();
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
        ...(spec.judge_model ? { judgeModel: spec.judge_model } : {}),
        ...(spec.judge_prompt ? { judgePrompt: spec.judge_prompt } : {}),
        ...(spec.max_cost_usd ? { maxCostNano: Math.round(spec.max_cost_usd * 1e9) } : {}),
        ...(spec.min_pass !== undefined ? { minPass: spec.min_pass } : {}),
      });
      logger.info(
        { schedule: spec.name, batch: result.batchId, requests: result.acceptedRequests },
        'scheduled run enqueued',
      );
      batches.push(result.batchId);
      await saveScheduleRuns(redis, keys, id, { ...(await scheduleRuns(redis, keys, id)), batches });
    }
    return batches;
  }
}
