import { afterEach, describe, expect, it } from 'vitest';
import { getUsage } from '../src/shared/batches/read-store.js';
import { shardOfUser } from '../src/shared/shard-ids.js';
import { CLOSE_STEP_MS } from '../src/shared/redis/worker-close.js';
import { startSimulator, type Simulator } from '../src/simulator/simulator-server.js';
import { repeatedCalls, turnLines } from './helpers/turn-lines.js';
import { startLocalCluster, type LocalCluster } from './helpers/local-cluster.js';
import {
  createTestEnv,
  spawnWorker,
  waitFor,
  waitForBatch,
  type TestEnv,
  type WorkerProcess,
} from './helpers/test-env.js';

/**
 * Issue 42's scenarios on a local 3-master + 3-replica cluster (cluster-node-timeout 1000, full coverage "no"), 6
 * shards, two worker processes, many more users than call slots and a slow upstream (so that calls/s is set by the
 * slots), the base tag's master stopped or killed mid-run. Each asserts the invariants (nothing lost, no overlap, every
 * user's turns in order, the report against what the upstream answered, no call made twice) and puts its figures in every
 * assertion's message.
 */
const SHARDS = 6;
const USERS = 300;
const TURNS = 28;
const IN_FLIGHT = 50;
const LATENCY_MS = 200;
/**
 * How long after its master answers again a user held by it may wait more: its lanes repaired (the first repair half a
 * second after the stall ends), then its turn among the users of every shard at once (alone: 1.1-2.8 s; under the whole
 * suite's load on 2 cores, CI saw 3.1 s, 5.0 s, 6.2 s and 7.9 s, with no lane left to the reconciler). What tells a user
 * resumed by the workers from one left to the reconciler is A's count of lanes the reconciler repaired, not this.
 */
const RESUME_MS = 10_000;
/**
 * CHATQ_TPM of scenario T: about 140 calls a second of the simulator's (28 tokens each), the call slots make 500; a
 * sixth of it (about 1,400 calls) at the start of each sixth of the minute.
 */
const TPM = 240_000;
interface Fault {
  kind: 'stop' | 'kill';
  /** How long the master is away (SIGSTOP to SIGCONT, or SIGKILL to its restart). */
  outageMs: number;
  wait: boolean;
  /** CHATQ_RPM (binding: below what the call slots make): every call asks the base tag's limits for a request slot. */
  rpm?: number;
  /** CHATQ_TPM (binding), with CHATQ_DEFAULT_MAX_TOKENS at TPM_MAX_TOKENS so that a call's charge is near its use. */
  tpm?: number;
  turns?: number;
  /** The fault begins after this many answers (800 when not given). */
  after?: number;
  /** A killed master is not started again (its replica, promoted, serves its slots from then on). */
  stayDown?: boolean;
  /** The second worker SIGKILLed this long after the fault began (its jobs are taken over once their locks lapse). */
  workerKilledAfterMs?: number;
}

/** The reply bound a call under a TPM limit is charged (its reply is shorter; settled at its real use after). */
const TPM_MAX_TOKENS = 32;

/** CHATQ_LOCK_MS of the runs where a worker is killed: its jobs are taken over 5 s after, not the default 30 s. */
const KILLED_WORKER_LOCK_MS = 5_000;

interface Run {
  cluster: LocalCluster;
  env: TestEnv;
  sim: Simulator;
  workers: WorkerProcess[];
  batchId: string;
  /** When the fault began and when the master answered again. */
  at: number;
  back: number;
  failedShards: Set<number>;
  /** How long each worker still running took to exit after SIGTERM, once the batch was done. */
  exitMs: number[];
}

/** The longest time any user waited between two of its calls at the upstream, and the user. */
function longestWait(sim: Simulator): { ms: number; shard: number } {
  let worst = { ms: 0, shard: -1 };
  for (const [userid, u] of Object.entries(sim.stats().users))
    for (let i = 1; i < u.arrivedAt.length; i++) {
      const gap = u.arrivedAt[i]! - u.arrivedAt[i - 1]!;
      if (gap > worst.ms) worst = { ms: gap, shard: shardOfUser(userid, SHARDS) };
    }
  return worst;
}

/** The longest time no call of the users of `shards` arrived at the upstream, from `from` on. */
function longestSilence(sim: Simulator, from: number, shards: Set<number>): number {
  const times = Object.entries(sim.stats().users)
    .filter(([userid]) => shards.has(shardOfUser(userid, SHARDS)))
    .flatMap(([, u]) => u.arrivedAt.filter((t) => t >= from))
    .sort((a, b) => a - b);
  return times.reduce((most, t, i) => (i ? Math.max(most, t - times[i - 1]!) : most), 0);
}

/** Calls per second arriving at the upstream from `from` to `to`, of the users of `shards` (all when not given). */
function callsPerSecond(sim: Simulator, from: number, to: number, shards?: Set<number>): number {
  let n = 0;
  for (const [userid, u] of Object.entries(sim.stats().users)) {
    if (shards && !shards.has(shardOfUser(userid, SHARDS))) continue;
    n += u.arrivedAt.filter((t) => t >= from && t < to).length;
  }
  return Math.round((n * 1000) / (to - from));
}

/** From the first call's arrival to the last's, in seconds. */
function runSeconds(sim: Simulator): number {
  const times = Object.values(sim.stats().users).flatMap((u) => u.arrivedAt);
  return Math.round(
    (times.reduce((a, b) => Math.max(a, b), 0) - times.reduce((a, b) => Math.min(a, b), Infinity)) / 1000,
  );
}

const turns = (fault: Fault) => fault.turns ?? TURNS;

/** The most calls that arrived at the upstream in any `windowMs`, and when that window began. */
function busiest(sim: Simulator, windowMs: number): { calls: number; at: number } {
  const times = Object.values(sim.stats().users)
    .flatMap((u) => u.arrivedAt)
    .sort((a, b) => a - b);
  let most = { calls: 0, at: 0 };
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowMs) j++;
    if (i - j + 1 > most.calls) most = { calls: i - j + 1, at: times[j]! };
  }
  return most;
}

/** The lane heads the workers' logs say were given a job again, by the log lines that say `what`. */
const readded = (workers: WorkerProcess[], what: string) =>
  workers
    .flatMap((w) => w.stderr().split('\n'))
    .filter((l) => l.includes(what))
    .reduce((n, l) => n + Number(/"readded":(\d+)/.exec(l)?.[1] ?? 0), 0);

describe('a Redis Cluster master away mid-run (issue 42)', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function run(fault: Fault): Promise<Run> {
    const cluster = await startLocalCluster(3, 1, { fullCoverage: false });
    cleanups.push(() => cluster.stop());
    const env = await createTestEnv(cluster.url, { cluster: true, shards: SHARDS });
    cleanups.push(() => env.cleanup());
    const sim = await startSimulator({ latencyMs: LATENCY_MS, jitterMs: 20, recordMessages: false });
    cleanups.push(() => sim.close());
    const vars = env.env({
      CHATQ_BASE_URL: sim.url,
      CHATQ_CONCURRENCY: String(IN_FLIGHT),
      CHATQ_TIMEOUT_MS: '5000',
      LOG_LEVEL: 'info',
      ...(fault.wait ? { CHATQ_REDIS_WAIT_REPLICAS: '1', CHATQ_REDIS_WAIT_MS: '500' } : {}),
      ...(fault.rpm ? { CHATQ_RPM: String(fault.rpm) } : {}),
      ...(fault.tpm ? { CHATQ_TPM: String(fault.tpm), CHATQ_DEFAULT_MAX_TOKENS: String(TPM_MAX_TOKENS) } : {}),
      ...(fault.workerKilledAfterMs ? { CHATQ_LOCK_MS: String(KILLED_WORKER_LOCK_MS) } : {}),
    });
    const workers = [spawnWorker(vars), spawnWorker(vars)];
    cleanups.push(async () => {
      for (const w of workers) w.child.kill('SIGKILL');
    });
    const { batchId } = await env.submit(turnLines(USERS, turns(fault), 'r'));
    await waitFor('progress', async () => (await env.batch(batchId)).succeeded >= (fault.after ?? 800), 60_000, 50);
    const base = await cluster.masterOf(env.keys.credentialsProven);
    const failedShards = await cluster.shardsOn(base, env.keys);
    const at = Date.now();
    if (fault.kind === 'stop') cluster.pause(base);
    else cluster.kill(base);
    if (fault.workerKilledAfterMs) {
      await new Promise((r) => setTimeout(r, fault.workerKilledAfterMs));
      workers[1]!.child.kill('SIGKILL');
    }
    await new Promise((r) => setTimeout(r, fault.outageMs - (fault.workerKilledAfterMs ?? 0)));
    // A stopped master wakes (and learns it was demoted); a killed one comes back as its successor's replica.
    if (fault.kind === 'stop') cluster.resume(base);
    else if (!fault.stayDown) cluster.restart(base);
    // The outage ends when the node answers again (on a busy machine, a moment after it was resumed or restarted).
    const back = fault.stayDown ? Date.now() : await cluster.answering(base);
    expect(await waitForBatch(env, batchId, 150_000)).toMatchObject({
      status: 'completed',
      succeeded: USERS * turns(fault),
    });
    // The batch done, nothing in flight: each worker is asked to stop, and timed.
    const exitMs = await Promise.all(
      workers.slice(0, fault.workerKilledAfterMs ? 1 : workers.length).map(async (w) => {
        const t0 = Date.now();
        w.child.kill('SIGTERM');
        await w.exited;
        return Date.now() - t0;
      }),
    );
    return { cluster, env, sim, workers, batchId, at, back, failedShards, exitMs };
  }

  /** The figures of a run (printed as one JSON line), and the invariants every scenario keeps. */
  async function checked(scenario: string, r: Run, fault: Fault) {
    const stats = r.sim.stats();
    const usage = await getUsage(r.env.redis, r.env.keys, 'default', 'batch', r.batchId);
    const others = new Set([...Array(SHARDS).keys()].filter((s) => !r.failedShards.has(s)));
    const figures = {
      scenario,
      fault: fault.kind,
      outage_ms: r.back - r.at,
      wait: fault.wait,
      longest_user_wait_ms: longestWait(r.sim).ms,
      calls_per_s_before: callsPerSecond(r.sim, r.at - 3_000, r.at),
      // From the promotion (about 2 s: cluster-node-timeout 1000) to the master's return.
      calls_per_s_during: callsPerSecond(r.sim, r.at + 2_500, r.back),
      other_shards_calls_per_s_before: callsPerSecond(r.sim, r.at - 3_000, r.at, others),
      other_shards_calls_per_s_during: callsPerSecond(r.sim, r.at + 2_500, r.back, others),
      // A TPM limit's tokens come in bursts, a sixth of the limit at the start of each sixth of the minute: its
      // rate before is over the last 10 s, and during from when the workers found the base tag away (after 1 s).
      other_shards_calls_per_s_10s_before: callsPerSecond(r.sim, r.at - 10_000, r.at, others),
      other_shards_calls_per_s_after_1s: callsPerSecond(r.sim, r.at + 1_000, r.back, others),
      other_shards_longest_silence_ms: longestSilence(r.sim, r.at, others),
      repeats: repeatedCalls(r.sim).repeats,
      overlaps: stats.overlaps,
      out_of_order: stats.outOfOrder,
      upstream_answered: stats.answered,
      reported_calls: usage.requests + usage.repeat_calls,
      readded_after_stall: readded(r.workers, 'lanes repaired after a Redis stall'),
      readded_by_reconciler: readded(r.workers, 'reconciler repaired lanes'),
      sigterm_exit_ms: r.exitMs,
      tokens_per_call: Math.round(stats.tokens.total / stats.calls),
      busiest_minute_tokens: stats.peakTokensInWindow,
      run_s: runSeconds(r.sim),
      busiest_5s_calls: busiest(r.sim, 5_000).calls,
      busiest_5s_after_fault_ms: busiest(r.sim, 5_000).at - r.at,
    };
    // The run's figures say what happened when an assertion fails (the same for the scenario's own, below).
    const why = JSON.stringify(figures);
    expect(figures.overlaps, why).toBe(0);
    expect(figures.out_of_order, why).toBe(0);
    expect(usage.requests, why).toBe(USERS * turns(fault));
    // With WAIT no acknowledged write is lost: the report is what the upstream answered. Without, a result the woken
    // master took before it learnt it was demoted is lost with it (its call is made again; that one counts).
    if (fault.wait) expect(figures.reported_calls, why).toBe(figures.upstream_answered);
    else expect(figures.reported_calls, why).toBeLessThanOrEqual(figures.upstream_answered);
    // No run met an error nobody expected (each would count as a failed attempt of its request).
    for (const w of r.workers) expect(w.stderr()).not.toContain('run failed unexpectedly');
    // Nothing in flight: a worker stops within its shutdown steps, BullMQ's close and the last writes (CLOSE_STEP_MS
    // each), whatever the cluster did; a fetcher whose node is gone never closed (CI: 12 s, its calls' bound).
    for (const ms of r.exitMs) expect(ms, why).toBeLessThan(2 * CLOSE_STEP_MS + 1_000);
    // A master stopped, or killed with WAIT, loses no acknowledged result: no call is made twice (before 0cdfb14: 95-106
    // in A, the finish writes of the stall lost with the demoted master). Without WAIT a result acknowledged in the
    // instant before the stop may not have reached the replica: a handful at most.
    if (fault.wait) expect(figures.repeats, why).toBe(0);
    else if (fault.kind === 'stop') expect(figures.repeats, why).toBeLessThanOrEqual(5);
    return { ...figures, why };
  }

  it('A: the base master stopped 8 s, no WAIT: every user held by it goes on once it answers again', async () => {
    const fault: Fault = { kind: 'stop', outageMs: 8_000, wait: false };
    const r = await run(fault);
    const figures = await checked('A', r, fault);
    expect(figures.longest_user_wait_ms, figures.why).toBeLessThanOrEqual(figures.outage_ms + RESUME_MS);
    // Before 0cdfb14, 95-106 lanes waited for the reconciler's pass; the workers now take them up themselves.
    expect(figures.readded_by_reconciler, figures.why).toBeLessThanOrEqual(5);
  });

  it('B: the same with WAIT: its shards go on once the master answers again', async () => {
    const fault: Fault = { kind: 'stop', outageMs: 8_000, wait: true };
    const figures = await checked('B', await run(fault), fault);
    expect(figures.longest_user_wait_ms, figures.why).toBeLessThanOrEqual(figures.outage_ms + RESUME_MS);
  });

  it('D: the base master killed 10 s with WAIT: the other shards take the call slots its shards cannot use', async () => {
    const fault: Fault = { kind: 'kill', outageMs: 10_000, wait: true };
    const figures = await checked('D', await run(fault), fault);
    // The slots its shards cannot use go to the others: their rate does not fall (it rose: 217 to 249 calls/s in CI),
    // while the whole deployment's is at the machine's mercy (0.76-1.29x its rate before, CI's load the lowest).
    expect(figures.other_shards_calls_per_s_during, figures.why).toBeGreaterThanOrEqual(
      0.9 * figures.other_shards_calls_per_s_before,
    );
  });

  it("L: the base master stopped 8 s with an RPM limit: the other shards go on within the workers' own shares of it", async () => {
    const fault: Fault = { kind: 'stop', outageMs: 8_000, wait: false, rpm: 12_000, turns: 20 };
    const figures = await checked('L', await run(fault), fault);
    // On 0cdfb14 they made none: every call waited for the base tag's request slot.
    expect(figures.other_shards_calls_per_s_during, figures.why).toBeGreaterThanOrEqual(
      0.5 * figures.other_shards_calls_per_s_before,
    );
    // Within the limit: requests are spaced 60 s / RPM apart, the workers' own shares too, and the switches to them
    // and back overlap nothing (a call may arrive a moment after its slot: a quarter of a second's worth is allowed).
    expect(figures.busiest_5s_calls, figures.why).toBeLessThanOrEqual((12_000 / 60) * 5.25 + 2);
  });

  it("T: the base master stopped 8 s with a TPM limit: the other shards go on within the workers' own shares of it", async () => {
    const fault: Fault = { kind: 'stop', outageMs: 8_000, wait: false, tpm: TPM, turns: 32, after: 3_000 };
    const figures = await checked('T', await run(fault), fault);
    expect(figures.other_shards_calls_per_s_after_1s, figures.why).toBeGreaterThanOrEqual(
      0.5 * figures.other_shards_calls_per_s_10s_before,
    );
    // Within the limit in every sliding minute (the run lasts longer than one), the minute of the stop with it: the
    // tokens charged before it, the workers' own shares during it, and the merged log after.
    expect(figures.run_s, figures.why).toBeGreaterThan(60);
    expect(figures.busiest_minute_tokens, figures.why).toBeLessThanOrEqual(TPM);
  });

  it('E: the base master killed 10 s, no WAIT, and a worker SIGKILLed 1 s later: the other shards flow on', async () => {
    const fault: Fault = { kind: 'kill', outageMs: 10_000, wait: false, workerKilledAfterMs: 1_000 };
    const figures = await checked('E', await run(fault), fault);
    // The live worker goes on with the shards of the other masters; the killed one's users wait for its locks. Mostly
    // they flow on without a gap (0.1-0.4 s), but in 2 runs of 11 every one of them went silent for 2.1-5.8 s (at +1 s
    // and +4.9 s, ending as the killed worker's jobs were taken over): not explained yet, so bounded by the lock.
    expect(figures.other_shards_longest_silence_ms, figures.why).toBeLessThanOrEqual(KILLED_WORKER_LOCK_MS + 3_000);
  });

  it('C: the base master killed for good, no WAIT: its replica takes over, nothing is lost or counted twice, and the workers stop at once', async () => {
    const fault: Fault = { kind: 'kill', outageMs: 10_000, wait: false, stayDown: true };
    await checked('C', await run(fault), fault);
  });
});
