import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { chatLines, createBatch } from '../helpers/api-batches.js';
import { waitFor } from '../helpers/test-env.js';
import { useApi, useWorld } from '../helpers/in-process-worker.js';

const A = 'tok-alpha-imports';
const B = 'tok-beta-imports';

describe('tenants: import work is shared between projects', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${A},beta:${B}` });

  it("a project's one-line batch is imported while another project's large imports wait or run", async () => {
    const client = (token: string) => new OpenAI({ baseURL: `${a.api.url}/v1`, apiKey: token, maxRetries: 0 });
    const beta = client(B);
    // Six batches of one 30k-line file, made at once: their imports queue up.
    const first = await createBatch(
      beta,
      chatLines(30_000, (i) => ({ user: `beta-${i % 2_000}` })),
      'big.jsonl',
    );
    const betas = [first];
    for (let i = 1; i < 6; i += 1)
      betas.push(
        await beta.batches.create({
          input_file_id: first.input_file_id,
          endpoint: '/v1/chat/completions',
          completion_window: '24h',
        }),
      );
    const alpha = await createBatch(client(A), chatLines(1), 'one.jsonl');
    await waitFor(
      'alpha imported',
      async () => (await client(A).batches.retrieve(alpha.id)).status !== 'validating',
      60_000,
      20,
    );
    // Alpha's import did not wait for beta's six (shared FIFO, it would have come after all of them): beta takes at
    // most three of the four import slots, so alpha's went within a moment, with beta's second round still to come.
    const statuses = await Promise.all(betas.map(async (b) => (await beta.batches.retrieve(b.id)).status));
    console.log(JSON.stringify({ beta_statuses_when_alpha_imported: statuses }));
    expect(statuses.filter((s) => s === 'validating').length).toBeGreaterThanOrEqual(1);
  });
});
