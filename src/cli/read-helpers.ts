import {
  addUsage,
  getBatch,
  getUsage,
  readBatchRequests,
  toUsageRow,
  type UsageRow,
} from '../shared/batches/read-store.js';
import { batchDone, type BatchRecord } from '../shared/batch-record.js';
import type { CliContext } from './cli-context.js';
import type { ProgressFigures } from './progress-bar.js';

export interface BatchWithUsage {
  batch: BatchRecord;
  usage: UsageRow;
}

export const sumUsage = (rows: UsageRow[]): UsageRow => rows.reduce(addUsage, toUsageRow('total', {}));

/** The CLI's reads of batches and their usage, for progress and summaries. */
export const readStore = {
  async batchesWithUsage(ctx: CliContext, ids: string[]): Promise<BatchWithUsage[]> {
    return Promise.all(
      ids.map(async (id) => {
        const batch = await getBatch(ctx.redis, ctx.keys, id);
        if (!batch) throw new Error(`batch ${id} not found (expired?)`);
        return { batch, usage: await getUsage(ctx.redis, ctx.keys, batch.project, 'batch', id) };
      }),
    );
  },

  requests: (ctx: CliContext, batchId: string) => readBatchRequests(ctx.redis, ctx.keys, batchId),

  figures(state: BatchWithUsage[]): ProgressFigures {
    const usage = sumUsage(state.map((s) => s.usage));
    return {
      done: state.reduce((a, s) => a + batchDone(s.batch), 0),
      total: state.reduce((a, s) => a + s.batch.total, 0),
      failed: state.reduce((a, s) => a + s.batch.failed, 0),
      tokens: usage.total_tokens,
      costNano: usage.cost_nano,
    };
  },
};
