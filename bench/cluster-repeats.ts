/**
 * bench/cluster-repeats: what running on a Redis Cluster without CHATQ_REDIS_WAIT_REPLICAS costs in calls made twice.
 * A local 3-master + 3-replica cluster (cluster-node-timeout 1000, full coverage "no"), 6 shards, a 200 ms upstream
 * (the simulator, in process: it counts every call), the base tag's master stopped 8 s (SIGSTOP, then SIGCONT) or
 * killed (SIGKILL, back after 10 s as its successor's replica) mid-run, at 1, 50 and 200 calls in flight (one worker
 * process at 1, two sharing the rest). Per run: the calls the upstream saw twice, whether the report counted them, and
 * nothing lost (every request succeeded once). Prints one JSON line: the table.
 *   npx tsx bench/cluster-repeats.ts [--inflight 1,50,200]
 */
import { getUsage } from '../src/shared/batches/read-store.js';
import { startSimulator } from '../src/simulator/simulator-server.js';
import { startLocalCluster } from '../test/helpers/local-cluster.js';
import { createTestEnv, spawnWorker, waitFor, waitForBatch } from '../test/helpers/test-env.js';
import { repeatedCalls, turnLines } from '../test/helpers/turn-lines.js';

const inflightArg = process.argv.indexOf('--inflight');
const LEVELS = (inflightArg > 0 ? process.argv[inflightArg + 1]! : '1,50,200').split(',').map(Number);

/** Users, turns and the answers before the fault: the run outlasts the fault at each level. */
const shapeOf = (inFlight: number) =>
  inFlight <= 1
    ? { users: 24, turns: 5, faultAfter: 15 }
    : { users: inFlight * 3, turns: Math.max(8, Math.ceil(3_000 / (inFlight * 3))), faultAfter: inFlight * 6 };

async function runOnce(inFlight: number, fault: 'stop' | 'kill') {
  const { users, turns, faultAfter } = shapeOf(inFlight);
  const cluster = await startLocalCluster(3, 1, { fullCoverage: false });
  const env = await createTestEnv(cluster.url, { cluster: true, shards: 6 });
  const sim = await startSimulator({ latencyMs: 200, jitterMs: 20, recordMessages: false });
  const processes = inFlight <= 1 ? 1 : 2;
  const vars = env.env({
    CHATQ_BASE_URL: sim.url,
    CHATQ_CONCURRENCY: String(Math.max(1, Math.round(inFlight / processes))),
    CHATQ_TIMEOUT_MS: '5000',
  });
  const workers = Array.from({ length: processes }, () => spawnWorker(vars));
  try {
    const { batchId } = await env.submit(turnLines(users, turns, 'q'));
    await waitFor('progress', async () => (await env.batch(batchId)).succeeded >= faultAfter, 120_000, 50);
    const base = await cluster.masterOf(env.keys.credentialsProven);
    const inFlightAtFault = sim.stats().calls - sim.stats().answered;
    if (fault === 'stop') cluster.pause(base);
    else cluster.kill(base);
    await new Promise((r) => setTimeout(r, fault === 'stop' ? 8_000 : 10_000));
    if (fault === 'stop') cluster.resume(base);
    else cluster.restart(base);
    const batch = await waitForBatch(env, batchId, 300_000);
    const usage = await getUsage(env.redis, env.keys, 'default', 'batch', batchId);
    const stats = sim.stats();
    return {
      in_flight: inFlight,
      fault,
      requests: users * turns,
      succeeded: batch.succeeded,
      calls_in_flight_at_fault: inFlightAtFault,
      repeats: repeatedCalls(sim).repeats,
      upstream_answered: stats.answered,
      reported_calls: usage.requests + usage.repeat_calls,
      overlaps: stats.overlaps,
      out_of_order: stats.outOfOrder,
    };
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    await sim.close();
    await env.cleanup().catch(() => undefined);
    await cluster.stop();
  }
}

const rows = [];
for (const inFlight of LEVELS) for (const fault of ['stop', 'kill'] as const) rows.push(await runOnce(inFlight, fault));
console.log(JSON.stringify({ bench: 'cluster-repeats', wait_replicas: 0, rows }));
