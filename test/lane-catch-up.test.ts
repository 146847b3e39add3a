import { describe, expect, it } from 'vitest';
import { waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

const line = (user: string, id: string) =>
  JSON.stringify({ custom_id: id, user, model: 'gpt-4o-mini', messages: [{ role: 'user', content: id }] });

describe('a lane behind its batch', () => {
  const w = useWorld({ latencyMs: 5 });

  it.each([
    { project: 'default', kept: 'keeps its slot past its slice while other lanes wait, and catches up' },
    { project: 'other', kept: "hands its lane back when another project's lanes wait: the projects' shares decide" },
  ])('$kept', async ({ project }) => {
    // Four users' single requests come first, alice's three turns after them: when A1 ends, the batch has 5 of its 7
    // requests done and alice 1 of her 3; another batch's lanes (of this project, or of another) wait in the queue.
    const first = await w.env.submit([
      ...['z1', 'z2', 'z3', 'z4'].map((u) => line(u, u)),
      line('alice', 'A1'),
      line('alice', 'A2'),
      line('alice', 'A3'),
    ]);
    const second = await w.env.submit(
      ['w1', 'w2', 'w3'].map((u) => line(u, u)),
      { project },
    );
    await w.startWorker({ CHATQ_CONCURRENCY: '1', CHATQ_LANE_SLICE_MS: '1' });
    await waitForBatch(w.env, first.batchId);
    await waitForBatch(w.env, second.batchId);
    expect(w.sim.stats().outOfOrder).toBe(0);
    // A handed turn gets no BullMQ job of its own: the queue's event stream shows the jobs added.
    const added = new Set<string>();
    for (const [, fields] of await w.env.redis.xrange(`${w.env.keys.prefix}:requests:events`, '-', '+')) {
      const event = Object.fromEntries(fields.flatMap((v, i) => (i % 2 ? [] : [[v, fields[i + 1]]])));
      if (event.event === 'added') added.add(event.jobId!);
    }
    const jobOf = async (customId: string) => {
      const id = await w.env.redis.hget(w.env.keys.batchCustomIds(first.batchId), customId);
      return added.has(`${first.batchId}-${id}`);
    };
    // alice's first turn had a job; in her own project her next two went on in it, ahead of the other batch's waiting
    // lanes; with another project's lanes waiting, her second turn went back in line with a job of its own.
    const expected = project === 'default' ? [true, false, false] : [true, true];
    const jobs = [await jobOf('A1'), await jobOf('A2'), await jobOf('A3')];
    expect(jobs.slice(0, expected.length)).toEqual(expected);
  });
});
