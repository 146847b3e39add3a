import { afterEach, beforeEach } from 'vitest';
import { startApiService, type ApiService } from '../../src/cli/api-service.js';
import type { Config } from '../../src/shared/config.js';
import { startSimulator, type Simulator } from '../../src/simulator/simulator-server.js';
import type { SimulatorOptionsInput } from '../../src/simulator/simulator-options.js';
import { WorkerPool } from '../../src/worker/worker-pool.js';
import { createTestEnv, testLogger, type TestEnv } from './test-env.js';

/** A worker pool inside the test process, for tests that do not need separate processes. */
export function startWorker(config: Config, baseUrl: string): Promise<WorkerPool> {
  return WorkerPool.start({ config, baseUrl, logger: testLogger() });
}

export interface World {
  env: TestEnv;
  sim: Simulator;
  /** Set by the test when it starts a worker; closed after it. */
  pool: WorkerPool | undefined;
  startWorker(env?: Record<string, string>): Promise<WorkerPool>;
}

/** Per test: a fresh TestEnv (its own prefix), cleaned up after; tests read it as `t.env`. */
export function useTestEnv(): { env: TestEnv } {
  const holder = {} as { env: TestEnv };
  beforeEach(async () => {
    holder.env = await createTestEnv();
  });
  afterEach(async () => {
    await holder.env.cleanup();
  });
  return holder;
}

/** Per test: its own Redis prefix and simulator, and a worker pool the test may start; all torn down after. */
export function useWorld(simulator: SimulatorOptionsInput = {}): World {
  const world = {
    pool: undefined,
    async startWorker(env: Record<string, string> = {}) {
      world.pool = await startWorker(world.env.config(env), world.sim.url);
      return world.pool;
    },
  } as unknown as World;
  beforeEach(async () => {
    world.env = await createTestEnv();
    world.sim = await startSimulator(simulator);
    world.pool = undefined;
  });
  afterEach(async () => {
    await world.pool?.close();
    await world.sim.close();
    await world.env.cleanup();
  });
  return world;
}

/** Per test (after useWorld's setup): chatq's HTTP API on a free port over the world's prefix; read it as `a.api`. */
export function useApi(world: World, env: Record<string, string>): { api: ApiService } {
  const holder = {} as { api: ApiService };
  beforeEach(async () => {
    holder.api = await startApiService(world.env.config(env), testLogger(), 0);
  });
  afterEach(async () => {
    await holder.api.close();
  });
  return holder;
}
