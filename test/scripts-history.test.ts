import { describe, expect, it } from 'vitest';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { legacyUserid } from '../src/shared/userid.js';
import type { StoredRequest } from '../src/shared/request-record.js';
import { waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

const replyOf = (r: StoredRequest) => (r.response!.choices as { message: { content: string } }[])[0]!.message.content;

describe('conversation scripts', () => {
  const w = useWorld({ latencyMs: 5, jitterMs: 5, recordMessages: true });

  async function run(lines: unknown[]) {
    const submitted = await w.env.submit(lines.map((l) => JSON.stringify(l)));
    await w.startWorker({ CHATQ_CONCURRENCY: '20' });
    const batch = await waitForBatch(w.env, submitted.batchId);
    const requests: StoredRequest[] = [];
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, submitted.batchId)) requests.push(r);
    return { batch, requests };
  }

  it('history "full": each turn is sent with the earlier turns and the real replies to them', async () => {
    const turns = [
      'My name is Farid and I like chess.',
      'I live in Tunis.',
      'What do I like?',
      'Where do I live? What is my name?',
    ];
    const users = ['farid', 'gala', 'hiro'];
    const { batch, requests } = await run(
      users.map((u) => ({ script_id: u, user: u, model: 'gpt-4o-mini', system: 'Be brief.', history: 'full', turns })),
    );
    expect(batch.succeeded).toBe(users.length * turns.length);

    for (const u of users) {
      const mine = requests.filter((r) => r.customId.startsWith(`${u}-turn-`));
      const sent = w.sim.stats().users[legacyUserid(u)]!.messages!;
      expect(sent).toHaveLength(turns.length);
      sent.forEach((messages, k) => {
        const expected: unknown[] = [{ role: 'system', content: 'Be brief.' }];
        for (let j = 0; j < k; j++)
          expected.push({ role: 'user', content: turns[j] }, { role: 'assistant', content: replyOf(mine[j]!) });
        expected.push({ role: 'user', content: turns[k] });
        expect(messages).toEqual(expected);
      });
    }
    // The replies themselves show the memory at work, and the prefix of each prompt was cached upstream.
    expect(replyOf(requests.find((r) => r.customId === 'farid-turn-4')!)).toMatch(
      /Your name is Farid\. You live in Tunis\./,
    );
    expect(requests.find((r) => r.customId === 'farid-turn-4')!.usage.cached_tokens).toBeGreaterThan(0);
  });

  it('history "memory": each turn is sent alone, in order, and relies on the endpoint memory', async () => {
    const { requests } = await run([
      { user: 'ines', model: 'gpt-4o-mini', turns: ['My name is Ines.', 'What is my name?'] },
    ]);
    expect(requests.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    expect(w.sim.stats().users[legacyUserid('ines')]!.messages!.map((m) => m.length)).toEqual([1, 1]);
    expect(replyOf(requests[1]!)).toMatch(/Your name is Ines\./);
  });

  it('on_failure "halt" skips the rest of that user\'s batch; "continue" goes on', async () => {
    const { batch, requests } = await run([
      {
        script_id: 'halting',
        user: 'jo',
        model: 'gpt-4o-mini',
        history: 'full',
        turns: ['hello', 'this one fails [fail 400]', 'never sent', 'nor this'],
      },
      {
        script_id: 'going-on',
        user: 'kim',
        model: 'gpt-4o-mini',
        turns: ['hello', 'this one fails [fail 422]', 'still sent'],
      },
      {
        custom_id: 'other-user',
        user: 'lou',
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'unaffected' }],
      },
    ]);
    const status = Object.fromEntries(requests.map((r) => [r.customId, r.status]));
    expect(status).toEqual({
      'halting-turn-1': 'succeeded',
      'halting-turn-2': 'failed',
      'halting-turn-3': 'skipped',
      'halting-turn-4': 'skipped',
      'going-on-turn-1': 'succeeded',
      'going-on-turn-2': 'failed',
      'going-on-turn-3': 'succeeded',
      'other-user': 'succeeded',
    });
    const failed = requests.find((r) => r.customId === 'halting-turn-2')!;
    expect(failed.error).toMatchObject({ code: 'forced_failure', status: 400 });
    expect(failed.attempts).toBe(1);
    expect(batch).toMatchObject({ succeeded: 4, failed: 2, skipped: 2, status: 'completed' });
    expect(batch.errors).toEqual({ forced_failure: 2 });
    expect(w.sim.stats().users[legacyUserid('jo')]!.calls).toBe(2);
  });
});
