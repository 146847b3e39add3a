import { describe, expect, it } from 'vitest';
import { createBatchRecord } from '../src/shared/batches/batch-imports.js';
import { newBatchId } from '../src/shared/ids.js';
import { getRequests, readBatchRequests } from '../src/shared/batches/read-store.js';
import { useApi, useWorld } from './helpers/in-process-worker.js';
import { runCli, waitFor, waitForBatch } from './helpers/test-env.js';

const TOKEN = 'retry-token';
const chat = (id: string, content: string) =>
  JSON.stringify({
    custom_id: id,
    user: `user-${id}`,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content }],
    expect: { contains: 'noted' },
  });

describe('retry what did not succeed', () => {
  const w = useWorld({ recordMessages: true });
  const a = useApi(w, { CHATQ_API_TOKENS: TOKEN });

  it('makes a new batch of the failed, cancelled or skipped requests: same custom_ids, bodies and users, metadata.retry_of', async () => {
    const submitted = await w.env.submit(
      [
        chat('ok-1', 'hello'),
        chat('bad-1', '[fail 400] nope'),
        chat('ok-2', 'hello again'),
        chat('bad-2', '[fail 422] nope'),
        JSON.stringify({
          script_id: 'story',
          user: 'teller',
          model: 'gpt-4o-mini',
          history: 'full',
          turns: ['My name is Ada.', '[fail 400] and then?', 'What is my name?'],
        }),
      ],
      { metadata: { team: 'evals' } },
    );
    await w.startWorker();
    const original = await waitForBatch(w.env, submitted.batchId);
    expect(original).toMatchObject({ succeeded: 3, failed: 3, skipped: 1 });

    // A batch that has not ended cannot be retried yet.
    const pending = newBatchId();
    await createBatchRecord(w.env.redis, w.env.keys, {
      batchId: pending,
      project: 'default',
      name: 'pending',
      input: 'x.jsonl',
      metadata: {},
    });
    const early = await fetch(`${a.api.url}/v1/batches/${pending}/retry`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(early.status).toBe(409);
    expect((await runCli(['retry', pending], w.env.env())).code).toBe(2);

    // CLI: only the failures with one code.
    const cli = await runCli(['retry', submitted.batchId, '--code', 'forced_failure'], w.env.env());
    expect(cli.code, cli.stderr).toBe(0);
    const cliBatch = await waitForBatch(w.env, cli.stdout.trim());
    expect(cliBatch.metadata).toEqual({ team: 'evals', retry_of: submitted.batchId });
    const retried: string[] = [];
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, cliBatch.id)) retried.push(r.customId);
    expect(retried).toEqual(['bad-1', 'bad-2', 'story-turn-2']);
    const [original400] = await getRequests(w.env.redis, w.env.keys, [`${submitted.batchId}-2`]);
    const again = [];
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, cliBatch.id)) again.push(r);
    expect(again[0]).toMatchObject({
      userid: original400!.userid,
      body: { messages: [{ role: 'user', content: '[fail 400] nope' }] },
      expect: { contains: 'noted' },
    });

    // API: the skipped turn, sent with the conversation it would have had.
    const res = await fetch(`${a.api.url}/v1/batches/${submitted.batchId}/retry`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ status: ['skipped'] }),
    });
    expect(res.status).toBe(200);
    const created = await res.json();
    expect(created.metadata.retry_of).toBe(submitted.batchId);
    const done = await waitFor('the API retry', async () => {
      const b = await w.env.batch(created.id);
      return b.status === 'completed' ? b : undefined;
    });
    expect(done).toMatchObject({ total: 1, succeeded: 1 });
    const [turn3] = await (async () => {
      const all = [];
      for await (const r of readBatchRequests(w.env.redis, w.env.keys, created.id)) all.push(r);
      return all;
    })();
    expect(turn3!.customId).toBe('story-turn-3');
    expect((turn3!.body.messages as { content: string }[]).map((m) => m.content)).toEqual([
      'My name is Ada.',
      expect.stringContaining('Ada'),
      'What is my name?',
    ]);
    const bad = await fetch(`${a.api.url}/v1/batches/${submitted.batchId}/retry`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ status: ['succeeded'] }),
    });
    expect(bad.status).toBe(400);
  });
});
