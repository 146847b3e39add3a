import { type OpenAI, toFile } from 'openai';
import { waitFor } from './test-env.js';

/** Chat lines, one user per line by default: `lines(n, (i) => ({...}))` overrides fields per line. */
export const chatLines = (count: number, fields: (i: number) => Record<string, unknown> = () => ({})) =>
  Array.from({ length: count }, (_, i) =>
    JSON.stringify({
      custom_id: `r${i}`,
      user: `user-${i}`,
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: `line ${i}` }],
      ...fields(i),
    }),
  );

/** Uploads `lines` as a batch input file through the SDK and makes a batch of it (as a service would). */
export async function createBatch(client: OpenAI, lines: string[], name = 'input.jsonl') {
  const file = await client.files.create({
    file: await toFile(Buffer.from(`${lines.join('\n')}\n`), name),
    purpose: 'batch',
  });
  return client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
}

/** Polls a batch through the SDK until it has ended (completed, failed, cancelled or expired). */
export const batchEnded = (client: OpenAI, id: string, timeoutMs = 120_000) =>
  waitFor(
    `batch ${id} to end`,
    async () => {
      const b = await client.batches.retrieve(id);
      return ['completed', 'failed', 'cancelled', 'expired'].includes(b.status) ? b : undefined;
    },
    timeoutMs,
    100,
  );
