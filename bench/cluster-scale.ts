/**
 * bench/cluster-scale: the same workload on a local 3-master Redis Cluster, kept under one hash tag (one chatq
 * prefix, CHATQ_SHARDS=1), spread over three prefixes whose tags sit on different masters (three chatq
 * deployments), and over six shards of one prefix (CHATQ_SHARDS=6: two per master). Per master: Redis main-thread CPU per request (INFO cpu
 * deltas) and its share of the work; the capacity one core gives (1 s / the busiest master's CPU per request).
 * Prints one JSON line.
 * With --limits, the workers run under global rate limits set too high to bind (CHATQ_RPM/TPM): what the limiter's
 * keys (under the base tag: every call passes through them) cost the master holding them.
 *   npx tsx bench/cluster-scale.ts [--requests 12000] [--users 1200] [--concurrency 100] [--limits]
 */
import { Redis } from 'ioredis';
import { WorkerPool } from '../src/worker/worker-pool.js';
import { startLocalCluster } from '../test/helpers/local-cluster.js';
import { createTestEnv, testLogger, waitForBatch, type TestEnv } from '../test/helpers/test-env.js';
import { arg, chatLines, round, startSimulatorProcess } from './bench-kit.js';

const REQUESTS = arg('requests', 12_000);
const USERS = arg('users', 1_200);
const C = arg('concurrency', 100);
const LIMITS: Record<string, string> = process.argv.includes('--limits')
  ? { CHATQ_RPM: '10000000', CHATQ_TPM: '10000000000' }
  : {};

const cluster = await startLocalCluster(3);
const sim = await startSimulatorProcess([]);
const masters = cluster.ports.map((port) => new Redis({ port }));

async function cpuUs(node: Redis): Promise<number> {
  const info = await node.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (field('used_cpu_sys_main_thread') + field('used_cpu_user_main_thread')) * 1e6;
}

/** `count` test environments (prefixes) whose hash tags sit on `count` different masters. */
async function prefixesOnDistinctMasters(count: number, shards: number): Promise<TestEnv[]> {
  const chosen: TestEnv[] = [];
  const used = new Set<number>();
  while (chosen.length < count) {
    const env = await createTestEnv(cluster.url, { cluster: true, shards });
    const master = await cluster.masterOf(env.prefix);
    if (used.has(master)) await env.cleanup();
    else {
      used.add(master);
      chosen.push(env);
    }
  }
  return chosen;
}

/** The workload split evenly over `prefixes` prefixes (each with `shards` shards), one worker pool each (C in flight in all). */
async function run(prefixes: number, shards = 1) {
  const envs = await prefixesOnDistinctMasters(prefixes, shards);
  const lines = chatLines(USERS, Math.ceil(REQUESTS / USERS)).slice(0, REQUESTS);
  const share = Math.ceil(lines.length / prefixes);
  const batches = await Promise.all(envs.map((env, i) => env.submit(lines.slice(i * share, (i + 1) * share))));
  const before = await Promise.all(masters.map(cpuUs));
  const t0 = Date.now();
  const pools = await Promise.all(
    envs.map((env) =>
      WorkerPool.start({
        config: env.config({ CHATQ_CONCURRENCY: String(Math.ceil(C / prefixes)), ...LIMITS }),
        baseUrl: sim.url,
        logger: testLogger(),
      }),
    ),
  );
  await Promise.all(envs.map((env, i) => waitForBatch(env, batches[i]!.batchId, 600_000)));
  const seconds = (Date.now() - t0) / 1000;
  const after = await Promise.all(masters.map(cpuUs));
  await Promise.all(pools.map((p) => p.close()));
  await Promise.all(envs.map((env) => env.cleanup()));
  const perMaster = after.map((a, i) => (a - before[i]!) / REQUESTS).sort((x, y) => y - x);
  const total = perMaster.reduce((a, b) => a + b, 0);
  return {
    prefixes,
    shards,
    req_per_s: round(REQUESTS / seconds, 0),
    cpu_us_per_request_per_master: perMaster.map((x) => round(x, 1)),
    busiest_master_share: round(perMaster[0]! / total, 2),
    /** What one Redis core sustains when the busiest master is the limit. */
    capacity_req_per_s: round(1e6 / perMaster[0]!, 0),
  };
}

const one = await run(1);
const three = await run(3);
const sharded = await run(1, 6);
for (const m of masters) m.disconnect();
await sim.stop();
await cluster.stop();
console.log(
  JSON.stringify({
    bench: 'cluster-scale',
    requests: REQUESTS,
    users: USERS,
    concurrency: C,
    limits: Object.keys(LIMITS).length > 0,
    masters: 3,
    one_hash_tag: one,
    three_hash_tags: three,
    six_shards: sharded,
    capacity_ratio: round(three.capacity_req_per_s / one.capacity_req_per_s, 2),
    sharded_capacity_ratio: round(sharded.capacity_req_per_s / one.capacity_req_per_s, 2),
  }),
);
process.exit(0);
