import { describe, expect, it } from 'vitest';
import { waitForBatch } from './helpers/test-env.js';
import { useWorld, type World } from './helpers/in-process-worker.js';

const USERS = 5;
const TURNS = 6;

/** Runs `users` × TURNS through a worker with these settings; answers how many turns a job was handed. */
async function handedTurns(w: World, tag: string, vars: Record<string, string>, users = USERS): Promise<number> {
  const lines = Array.from({ length: users * TURNS }, (_, i) =>
    JSON.stringify({
      custom_id: `r${i}`,
      user: `${tag}-${i % users}`,
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: `[seq ${Math.floor(i / users)}] hi` }],
    }),
  );
  const submitted = await w.env.submit(lines);
  await w.startWorker(vars);
  expect(await waitForBatch(w.env, submitted.batchId)).toMatchObject({ succeeded: users * TURNS });
  expect(w.sim.stats().outOfOrder).toBe(0);
  // A handed turn gets no BullMQ job of its own: the queue's event stream shows the jobs added for this batch.
  const added = new Set<string>();
  for (const [, fields] of await w.env.redis.xrange(`${w.env.keys.prefix}:requests:events`, '-', '+')) {
    const event = Object.fromEntries(fields.flatMap((v, i) => (i % 2 ? [] : [[v, fields[i + 1]]])));
    if (event.event === 'added' && event.jobId?.startsWith(`${submitted.batchId}-`)) added.add(event.jobId);
  }
  return users * TURNS - added.size;
}

describe('lane slice (CHATQ_LANE_SLICE_MS)', () => {
  const w = useWorld({ latencyMs: 5 });

  it.each([
    { slice: '0', handed: 'none' },
    { slice: '60000', handed: 'every later turn' },
  ])(
    "with a slice of $slice ms a job goes on with its lane's next turns: $handed; order holds either way",
    async ({ slice }) => {
      const handed = await handedTurns(w, 'slice-user', { CHATQ_LANE_SLICE_MS: slice, CHATQ_CONCURRENCY: '10' });
      // A user's first turn has a job of its own; with a slice longer than the run, each later one is handed on.
      expect(handed).toBe(slice === '0' ? 0 : USERS * (TURNS - 1));
    },
  );

  it.each([
    { concurrency: '10', waiting: 'no other lane waits: it goes on with every later turn' },
    { concurrency: '1', waiting: 'other lanes wait: it hands its lane back' },
  ])('past its slice a job goes on only while no other lane waits ($waiting)', async ({ concurrency }) => {
    // One user alone: no other lane can wait, whenever the worker fetches what. One call slot keeps 3 jobs in hand:
    // of 12 users, 9 wait from the start.
    const users = concurrency === '10' ? 1 : 12;
    const handed = await handedTurns(
      w,
      'past-slice',
      { CHATQ_LANE_SLICE_MS: '1', CHATQ_CONCURRENCY: concurrency },
      users,
    );
    if (concurrency === '10') expect(handed).toBe(users * (TURNS - 1));
    else expect(handed).toBeLessThan(users * (TURNS - 1));
  });
});
