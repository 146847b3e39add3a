/**
 * bench/rate-limit: chatq at the upstream's own limit. The simulator enforces an RPM (then a TPM) limit over a
 * sliding minute; two chatq worker processes are configured at that same limit. Prints one JSON line:
 * achieved rate over the run's last minute as a fraction of the limit, the largest count the simulator saw in any sliding minute, and
 * the 429s it had to send; next to a plain p-limit loop at the same concurrency (the baseline).
 * With --cluster, chatq runs on a local 3-master Redis Cluster (CHATQ_REDIS_CLUSTER=1) instead of the local Redis;
 * --shards N spreads its users over N shards (CHATQ_SHARDS).
 *   npx tsx bench/rate-limit.ts [--seconds 75] [--cluster] [--shards 6]
 */
import { startSimulator } from '../src/simulator/simulator-server.js';
import { startLocalCluster } from '../test/helpers/local-cluster.js';
import { createTestEnv, REDIS_URL } from '../test/helpers/test-env.js';
import { arg, chatLines, plainLoop, round, sleep, startFleet } from './bench-kit.js';

const SECONDS = arg('seconds', 75);
const CONCURRENCY = 20;
const cluster = process.argv.includes('--cluster') ? await startLocalCluster(3) : undefined;
const SHARDS = arg('shards', 1);

async function run(kind: 'rpm' | 'tpm', limit: number) {
  const sim = await startSimulator({ [kind]: limit, latencyMs: 40, jitterMs: 30 });
  const env = await createTestEnv(cluster?.url ?? REDIS_URL, { cluster: cluster !== undefined, shards: SHARDS });
  // Far more work than the limit allows in the run; max_tokens keeps the token estimate close to real use.
  await env.submit(chatLines(100, 60, { max_tokens: 40 }));
  const fleet = await startFleet(env, 2, {
    CHATQ_BASE_URL: sim.url,
    CHATQ_CONCURRENCY: String(CONCURRENCY),
    [`CHATQ_${kind.toUpperCase()}`]: String(limit),
  });
  while (sim.stats().answered === 0) await sleep(5);
  // Measured over the run's last minute: the first seconds may use the whole (still empty) window.
  const warmUp = Math.max(0, SECONDS - 60);
  await sleep(warmUp * 1000);
  const used = () => (kind === 'rpm' ? sim.stats().answered : sim.stats().tokens.total);
  const t0 = Date.now();
  const start = used();
  await sleep((SECONDS - warmUp) * 1000);
  const s = sim.stats();
  const perMinute = ((used() - start) / (Date.now() - t0)) * 60_000;
  const peak = kind === 'rpm' ? s.peakRequestsInWindow : s.peakTokensInWindow;
  await fleet.stop();
  await env.cleanup();
  await sim.close();

  // Baseline: the plain loop against the same limit, for a third of the time.
  const naiveSim = await startSimulator({ [kind]: limit, latencyMs: 40, jitterMs: 30 });
  const naive = await plainLoop(naiveSim.url, 1_000_000, CONCURRENCY * 2, (SECONDS * 1000) / 3);
  await naiveSim.close();
  return {
    limit,
    seconds: SECONDS,
    achieved_per_minute: round(perMinute, 1),
    achieved_fraction: round(perMinute / limit),
    peak_in_sliding_minute: peak,
    peak_fraction: round(peak / limit),
    upstream_429: s.limited + s.injected.rateLimit429,
    baseline_plain_loop: { ok: naive.ok, upstream_429: naive.status429, seconds: round(naive.ms / 1000, 1) },
  };
}

const rpm = await run('rpm', arg('rpm', 600));
const tpm = await run('tpm', arg('tpm', 30_000));
await cluster?.stop();
console.log(
  JSON.stringify({
    bench: 'rate-limit',
    redis: cluster ? 'cluster of 3 masters' : 'single',
    shards: SHARDS,
    workers: 2,
    concurrency_per_worker: CONCURRENCY,
    rpm,
    tpm,
  }),
);
process.exit(0);
