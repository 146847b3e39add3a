import { describe, expect, it } from 'vitest';
import { getRequests, readBatchRequests } from '../src/shared/batches/read-store.js';
import { useWorld } from './helpers/in-process-worker.js';
import { waitForBatch } from './helpers/test-env.js';

const line = (i: number, content: string) =>
  JSON.stringify({ custom_id: `c${i}`, user: `u${i}`, model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

describe('responses are stored compactly', () => {
  const w = useWorld();

  it('keeps each response compressed (under half its JSON here) and reads it back whole; plain values from before still read', async () => {
    const submitted = await w.env.submit([
      line(1, 'Hi, I am Sam and I live in Lisbon.'),
      line(2, `Tell me about ${'the river and the hills of the old town, '.repeat(20)}`),
    ]);
    await w.startWorker();
    await waitForBatch(w.env, submitted.batchId);
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, submitted.batchId)) {
      const json = JSON.stringify(r.response);
      expect(r.response).toMatchObject({ object: 'chat.completion', choices: [{ message: { role: 'assistant' } }] });
      const stored = (await w.env.redis.getBuffer(w.env.keys.requestResponse(r.id)))!;
      expect(stored.subarray(0, 2)).toEqual(Buffer.from([0, 1]));
      expect(stored.length).toBeLessThan(json.length / 2);
    }
    // A response stored as plain JSON text (before compression existed) reads as it is.
    const id = `${submitted.batchId}-1`;
    await w.env.redis.set(
      w.env.keys.requestResponse(id),
      JSON.stringify({ object: 'chat.completion', choices: [], plain: true }),
    );
    const [r] = await getRequests(w.env.redis, w.env.keys, [id]);
    expect(r!.response).toEqual({ object: 'chat.completion', choices: [], plain: true });
  });
});
