import OpenAI, { toFile } from 'openai';
import { describe, expect, it } from 'vitest';
import { createBatchRecord, openImportQueue, queueImport } from '../../src/shared/batches/batch-imports.js';
import { newBatchId } from '../../src/shared/ids.js';
import { chatLines } from '../helpers/api-batches.js';
import { useApi, useWorld } from '../helpers/in-process-worker.js';
import { waitFor } from '../helpers/test-env.js';

const A = 'tok-alpha-imports';
const B = 'tok-beta-imports';

describe('tenants: import work is shared between projects', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${A},beta:${B}` });

  it("a project's one-line batch is imported while another project's large imports wait or run", async () => {
    const upload = async (token: string, lines: string[]) =>
      (
        await new OpenAI({ baseURL: `${a.api.url}/v1`, apiKey: token, maxRetries: 0 }).files.create({
          file: await toFile(Buffer.from(`${lines.join('\n')}\n`), 'in.jsonl'),
          purpose: 'batch',
        })
      ).id;
    const betaFile = await upload(
      B,
      chatLines(30_000, (i) => ({ user: `beta-${i % 2_000}` })),
    );
    const alphaFile = await upload(A, chatLines(1));
    // Six imports of beta's 30k-line file and then alpha's one-line file, queued as POST /v1/batches queues them (the
    // server's importer takes them from there).
    const { redis, keys } = w.env;
    const imports = openImportQueue(redis, keys.prefix);
    const queue = async (project: string, fileId: string) => {
      const batchId = newBatchId();
      await createBatchRecord(redis, keys, { batchId, project, name: fileId, input: fileId, metadata: {} });
      await queueImport(redis, keys, imports, { batchId, fileId, project });
      return batchId;
    };
    try {
      // Queued while the queue is paused, so that all seven are there when the importer takes the first.
      await imports.pause();
      const betas: string[] = [];
      for (let i = 0; i < 6; i += 1) betas.push(await queue('beta', betaFile));
      const alpha = await queue('alpha', alphaFile);
      await imports.resume();
      const status = (id: string) => redis.hget(keys.batch(id), 'status');
      await waitFor('alpha imported', async () => (await status(alpha)) !== 'validating', 60_000, 20);
      const statuses = await Promise.all(betas.map(status));
      // Alpha's import did not wait for beta's six (in one queue, first come first served, it came after all of them):
      // beta takes at most three of the four import slots, so alpha's went in the first round.
      expect(statuses.filter((s) => s === 'validating').length).toBeGreaterThanOrEqual(3);
    } finally {
      await imports.close();
    }
  });
});
