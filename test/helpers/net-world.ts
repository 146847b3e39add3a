import { afterEach, beforeEach, expect } from 'vitest';
import { getUsage } from '../../src/shared/batches/read-store.js';
import { startSimulator, type Simulator } from '../../src/simulator/simulator-server.js';
import type { SimulatorOptionsInput } from '../../src/simulator/simulator-options.js';
import { chatqOn, netLab, redisOn, type HostProcess, type NetHost, type NetLab } from './net-hosts.js';
import { createTestEnv, waitForBatch, type TestEnv } from './test-env.js';

/** Per test: a network lab with Redis on a host of its own, the simulator on the test process's host, a test prefix. */
export interface NetWorld {
  lab: NetLab;
  redisHost: NetHost;
  redisUrl: string;
  sim: Simulator;
  env: TestEnv;
  /** Every process started with `chatq`, stopped after the test. */
  chatq(host: NetHost, args: string[], extra?: Record<string, string>): HostProcess;
  /** Waits for the batch to end; fails at once, with its output, when a `chatq worker` of this test exits. */
  waitForBatch(batchId: string, timeoutMs: number): Promise<unknown>;
}

export function useNetWorld(simulator: SimulatorOptionsInput = {}): NetWorld {
  const world = {} as NetWorld;
  let processes: HostProcess[] = [];
  let redis: HostProcess | undefined;
  beforeEach(async () => {
    world.lab = await netLab();
    world.redisHost = await world.lab.host('redis');
    const started = await redisOn(world.redisHost);
    redis = started.process;
    world.redisUrl = started.url;
    world.sim = await startSimulator(simulator, 0, world.lab.gateway);
    world.env = await createTestEnv(world.redisUrl);
    processes = [];
    let workerExit: Promise<never> | undefined;
    world.chatq = (host, args, extra = {}) => {
      const p = chatqOn(host, args, { ...world.env.env(), LOG_LEVEL: 'warn', ...extra });
      processes.push(p);
      if (args[0] === 'worker') {
        const exited = p.exited.then((code) =>
          Promise.reject(new Error(`chatq worker on ${host.name} exited (${code}): ${p.output()}`)),
        );
        workerExit = workerExit ? Promise.race([workerExit, exited]) : exited;
        workerExit.catch(() => undefined);
      }
      return p;
    };
    world.waitForBatch = (batchId, timeoutMs) =>
      Promise.race([waitForBatch(world.env, batchId, timeoutMs), ...(workerExit ? [workerExit] : [])]);
  });
  afterEach(async () => {
    await Promise.all(processes.map((p) => p.stop('SIGKILL')));
    await world.sim.close();
    world.env.redis.disconnect();
    await redis?.stop('SIGKILL');
    await world.lab.close();
  });
  return world;
}

/**
 * What every network scenario asserts once its batch has ended: every request succeeded and was counted once, no user
 * had two calls in flight, each user's turns reached the upstream in order (a turn may be sent again, never after a
 * later one). Returns the upstream calls made more than once (repeats), which the scenario reports.
 */
export async function expectInvariants(
  world: Pick<NetWorld, 'env' | 'sim'>,
  batchId: string,
  total: number,
): Promise<void> {
  const batch = await world.env.batch(batchId);
  expect(batch).toMatchObject({ status: 'completed', total, succeeded: total });
  expect((await getUsage(world.env.redis, world.env.keys, 'default', 'batch', batchId)).requests).toBe(total);
  const stats = world.sim.stats();
  expect(stats.overlaps).toBe(0);
  expect(stats.outOfOrder).toBe(0);
  for (const u of Object.values(stats.users)) {
    const seqs = u.arrivals.map((a) => Number(/\[seq (\d+)\]/.exec(a)?.[1] ?? -1));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  }
}

/** `users` × `turns` lines, each turn's prompt tagged "[seq N]" so that the simulator's arrivals show the order. */
export function conversationLines(users: number, turns: number, tag: string): string[] {
  const lines = [];
  for (let t = 0; t < turns; t++)
    for (let u = 0; u < users; u++)
      lines.push(
        JSON.stringify({
          custom_id: `${tag}-u${u}-t${t}`,
          user: `${tag}-${u}`,
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: `[seq ${t}] hello` }],
        }),
      );
  return lines;
}
