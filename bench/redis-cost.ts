/**
 * bench/redis-cost: what one request costs Redis. On a private redis-server (nothing else talks to it), the Redis
 * main thread's CPU and the commands it ran (INFO cpu / INFO commandstats deltas), per request, for chatq (enqueue to
 * stored result, 2,000 users x 10 turns, no upstream latency) by both paths: `chatq enqueue` + a worker, and
 * `chatq run` (the CLI process: enqueue, its own worker pool, the progress bar, the summary), next to raw BullMQ's
 * per job (addBulk + a no-op worker) in the same run; and the bytes a finished request keeps (INFO memory delta), next to
 * a raw BullMQ job that carries its chat line and keeps a simulator answer as its return value. Then, in a run of its
 * own (SLOWLOG at threshold 0 costs time of its own), where chatq's time goes, script by script: each script's calls
 * and µs per request (SLOWLOG's duration of each call, named by its SHA, the commands it ran included; BullMQ's scripts together as "bullmq"; plain
 * commands by name).
 * Prints one JSON line.
 * Raw BullMQ and chatq run side by side in --rounds rounds; the figures are the round of the median ratio's.
 *   npx tsx bench/redis-cost.ts [--requests 20000] [--users 2000] [--concurrency 100] [--rounds 3]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startLocalRedis } from '../src/cli/local-redis.js';
import { LuaScript } from '../src/shared/redis/redis.js';
import { legacyUserid } from '../src/shared/userid.js';
import { WorkerPool } from '../src/worker/worker-pool.js';
import { createTestEnv, runCli, type TestEnv, testLogger, waitForBatch } from '../test/helpers/test-env.js';
import { arg, chatLines, median, round, startSimulatorProcess } from './bench-kit.js';

const REQUESTS = arg('requests', 20_000);
const USERS = arg('users', 2_000);
const C = arg('concurrency', 100);
const ROUNDS = arg('rounds', 3);

interface Cost {
  cpuUs: number;
  commands: number;
  /** The commands run most, per unit. */
  top: Record<string, number>;
  /** Where Redis spent its time, µs per unit (a script's time includes the commands it ran). */
  topUs: Record<string, number>;
}

/** Redis main-thread CPU (µs) and commands by name, since the last reset. */
async function sample(
  admin: Redis,
): Promise<{ cpuUs: number; calls: Record<string, number>; usec: Record<string, number> }> {
  const cpu = await admin.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
  const cpuUs = (field('used_cpu_sys_main_thread') + field('used_cpu_user_main_thread')) * 1e6;
  const calls: Record<string, number> = {};
  const usec: Record<string, number> = {};
  for (const m of (await admin.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    calls[m[1]!] = Number(m[2]);
    usec[m[1]!] = Number(m[3]);
  }
  return { cpuUs, calls, usec };
}

async function measure(admin: Redis, units: number, work: () => Promise<void>): Promise<Cost> {
  await admin.config('RESETSTAT');
  const before = await sample(admin);
  await work();
  const after = await sample(admin);
  // The two INFO calls and RESETSTAT are the bench's own.
  const calls = Object.entries(after.calls)
    .map(([name, n]) => [name, n - (before.calls[name] ?? 0) - (name === 'info' ? 2 : 0)] as const)
    .filter(([, n]) => n > 0);
  const commands = calls.reduce((a, [, n]) => a + n, 0);
  const top = Object.fromEntries(
    calls
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([name, n]) => [name, round(n / units, 2)]),
  );
  const spent = Object.entries(after.usec)
    .map(([name, us]) => [name, us - (before.usec[name] ?? 0)] as const)
    .filter(([, us]) => us > 0);
  const topUs = Object.fromEntries(
    spent
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([name, us]) => [name, round(us / units, 1)]),
  );
  return { cpuUs: (after.cpuUs - before.cpuUs) / units, commands: commands / units, top, topUs };
}

const redis = await startLocalRedis({ appendfsync: 'off' });
const admin = new Redis(redis.url);
const sim = await startSimulatorProcess([]);

const usedMemory = async () => Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);
const lines = chatLines(USERS, Math.ceil(REQUESTS / USERS)).slice(0, REQUESTS);

/**
 * Raw BullMQ: the same number of jobs, added in bulk and processed by a worker that returns `reply`. Without a reply,
 * a no-op whose jobs are removed on completion (the CPU baseline); with one, each job carries its chat line and keeps
 * the reply as its return value (what a queue of one's own would keep per result: the bytes baseline).
 */
async function rawBullmq(reply?: Record<string, unknown>): Promise<{ cost: Cost; bytesPerJob: number }> {
  const rawEnv = await createTestEnv(redis.url);
  const before = await usedMemory();
  const cost = await measure(admin, REQUESTS, async () => {
    // Plain ioredis connections, as a script of one's own would have.
    const queueConnection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue('raw', { connection: queueConnection, prefix: rawEnv.prefix });
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    let done = 0;
    let finish: () => void = () => undefined;
    const finished = new Promise<void>((r) => (finish = r));
    const worker = new Worker(
      'raw',
      async () => {
        if (++done === REQUESTS) finish();
        return reply;
      },
      { connection, prefix: rawEnv.prefix, concurrency: C, removeOnComplete: { count: reply ? REQUESTS : 0 } },
    );
    for (let i = 0; i < REQUESTS; i += 1000)
      await queue.addBulk(
        lines.slice(i, i + 1000).map((line, j) => ({ name: 'raw', data: reply ? JSON.parse(line) : { i: i + j } })),
      );
    await finished;
    await worker.close();
    await queue.close();
    connection.disconnect();
    queueConnection.disconnect();
  });
  const bytesPerJob = ((await usedMemory()) - before) / REQUESTS;
  await rawEnv.cleanup();
  return { cost, bytesPerJob };
}

/** Each script's (and plain command's) calls and µs per unit, from SLOWLOG at threshold 0 over `work`, and its share of cpuUsPerUnit. */
async function perScript(
  units: number,
  cpuUsPerUnit: number,
  work: () => Promise<void>,
): Promise<Record<string, { calls: number; us: number; cpu_us: number }>> {
  const names = new Map(LuaScript.loaded.map((s) => [s.sha, s.name.replace(/^chatq_/, '')]));
  await admin.config('SET', 'slowlog-log-slower-than', '0');
  await admin.config('SET', 'slowlog-max-len', '2000000');
  await admin.slowlog('RESET');
  await work();
  const entries = (await admin.slowlog('GET', '-1')) as [number, number, number, string[], string][];
  await admin.config('SET', 'slowlog-log-slower-than', '10000');
  await admin.slowlog('RESET');
  const by: Record<string, { calls: number; us: number }> = {};
  // A command a script ran is logged too (from the client "?:0"), and its time is in the script's.
  for (const [, , us, args] of entries.filter((e) => e[4] !== '?:0')) {
    const command = args[0]!.toLowerCase();
    const name =
      command === 'evalsha' ? (names.get(args[1]!) ?? 'bullmq') : command === 'eval' ? 'eval (first load)' : command;
    by[name] ??= { calls: 0, us: 0 };
    by[name].calls += 1;
    by[name].us += us;
  }
  // SLOWLOG's durations are wall time and hold the logging of the commands a script ran: what each costs is its share
  // of the main-thread CPU measured without SLOWLOG (cpuUsPerUnit).
  const logged = Object.values(by).reduce((a, v) => a + v.us, 0);
  return Object.fromEntries(
    Object.entries(by)
      .sort((a, b) => b[1].us - a[1].us)
      .filter(([, v]) => v.us / units >= 0.05)
      .map(([name, v]) => [
        name,
        {
          calls: round(v.calls / units, 2),
          us: round(v.us / units, 1),
          cpu_us: round((cpuUsPerUnit * v.us) / logged, 1),
        },
      ]),
  );
}

// One real answer of the simulator, kept by every job of the bytes baseline.
const answer = (await (
  await fetch(`${sim.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
    body: JSON.stringify({ ...JSON.parse(lines[0]!), userid: legacyUserid('bench-0') }),
  })
).json()) as Record<string, unknown>;
const rawKept = await rawBullmq(answer);

/** One worker pool on the batch until every result is stored. */
async function workUntilStored(testEnv: TestEnv, id: string): Promise<void> {
  const pool = await WorkerPool.start({
    config: testEnv.config({ CHATQ_CONCURRENCY: String(C) }),
    baseUrl: sim.url,
    logger: testLogger(),
  });
  await waitForBatch(testEnv, id, 600_000);
  await pool.close();
}

/** chatq: enqueue, then one worker pool until every result is stored. */
async function chatqRound(): Promise<{ enqueue: Cost; work: Cost; bytes: number }> {
  const env = await createTestEnv(redis.url);
  const memoryBefore = await usedMemory();
  let batchId = '';
  const enqueue = await measure(admin, REQUESTS, async () => {
    batchId = (await env.submit(lines)).batchId;
  });
  const work = await measure(admin, REQUESTS, () => workUntilStored(env, batchId));
  const bytes = ((await usedMemory()) - memoryBefore) / REQUESTS;
  await env.cleanup();
  return { enqueue, work, bytes };
}

// Rounds of raw BullMQ then chatq, side by side: this machine's noise moves both, the ratio of a round much less. The
// round of the median ratio is reported.
const rounds: { raw: Cost; chatq: Awaited<ReturnType<typeof chatqRound>>; ratio: number }[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const raw = (await rawBullmq()).cost;
  const chatq = await chatqRound();
  rounds.push({ raw, chatq, ratio: (chatq.enqueue.cpuUs + chatq.work.cpuUs) / raw.cpuUs });
}
const byRatio = [...rounds].sort((a, b) => a.ratio - b.ratio);
const {
  raw,
  chatq: { enqueue, work },
} = byRatio[Math.floor((ROUNDS - 1) / 2)]!;
const bytesPerFinished = median(rounds.map((r) => r.chatq.bytes));

// Where the time goes, script by script: the same enqueue and work again, with SLOWLOG on.
const scriptEnv = await createTestEnv(redis.url);
const scripts = await perScript(REQUESTS, enqueue.cpuUs + work.cpuUs, async () =>
  workUntilStored(scriptEnv, (await scriptEnv.submit(lines)).batchId),
);
await scriptEnv.cleanup();

// `chatq run`: the same lines through the CLI, which enqueues, works, shows progress and summarises in one process.
const runEnv = await createTestEnv(redis.url);
const dir = mkdtempSync(join(tmpdir(), 'chatq-redis-cost-'));
const file = join(dir, 'lines.jsonl');
writeFileSync(file, `${lines.join('\n')}\n`);
const run = await measure(admin, REQUESTS, async () => {
  const r = await runCli(['run', file], runEnv.env({ CHATQ_BASE_URL: sim.url, CHATQ_CONCURRENCY: String(C) }), 600_000);
  if (r.code !== 0) throw new Error(`chatq run failed (${r.code}): ${r.stderr.slice(-500)}`);
});
rmSync(dir, { recursive: true, force: true });
await runEnv.cleanup();

admin.disconnect();
await sim.stop();
await redis.stop();
const chatqCpu = enqueue.cpuUs + work.cpuUs;
const chatqCommands = enqueue.commands + work.commands;
console.log(
  JSON.stringify({
    bench: 'redis-cost',
    requests: REQUESTS,
    users: USERS,
    concurrency: C,
    chatq_per_request: {
      redis_cpu_us: round(chatqCpu, 1),
      commands: round(chatqCommands, 1),
      enqueue: {
        cpu_us: round(enqueue.cpuUs, 1),
        commands: round(enqueue.commands, 1),
        top: enqueue.top,
        top_us: enqueue.topUs,
      },
      work: { cpu_us: round(work.cpuUs, 1), commands: round(work.commands, 1), top: work.top, top_us: work.topUs },
    },
    chatq_run_per_request: {
      redis_cpu_us: round(run.cpuUs, 1),
      commands: round(run.commands, 1),
      top: run.top,
      top_us: run.topUs,
    },
    run_vs_enqueue_plus_worker: round(run.cpuUs / chatqCpu, 2),
    raw_bullmq_per_job: {
      redis_cpu_us: round(raw.cpuUs, 1),
      commands: round(raw.commands, 1),
      top: raw.top,
      top_us: raw.topUs,
    },
    cpu_ratio: round(chatqCpu / raw.cpuUs, 2),
    cpu_ratio_rounds: rounds.map((r) => round(r.ratio, 2)),
    commands_ratio: round(chatqCommands / raw.commands, 2),
    bytes_per_finished_request: Math.round(bytesPerFinished),
    raw_bullmq_kept_job_bytes: Math.round(rawKept.bytesPerJob),
    bytes_vs_raw_bullmq_kept: round(bytesPerFinished / rawKept.bytesPerJob),
    per_script: scripts,
  }),
);
process.exit(0);
