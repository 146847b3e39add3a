/** Shared by the benchmarks: figures, a worker fleet, and the baseline loop every benchmark compares against. */
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import pLimit from 'p-limit';
import { legacyUserid } from '../src/shared/userid.js';
import { headersOf } from '../src/worker/upstream/http-transport.js';
import { UpstreamConnections } from '../src/worker/upstream/upstream-connections.js';
import { createTestEnv, spawnWorker, type TestEnv, type WorkerProcess } from '../test/helpers/test-env.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length
    ? s.length % 2
      ? s[(s.length - 1) / 2]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
    : Number.NaN;
};

export const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

export function chatLines(users: number, perUser: number, extra: Record<string, unknown> = {}): string[] {
  const lines: string[] = [];
  for (let t = 0; t < perUser; t++) {
    for (let u = 0; u < users; u++) {
      lines.push(
        JSON.stringify({
          user: `bench-${u}`,
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: `[seq ${t}] hello from user ${u}, tell me something` }],
          ...extra,
        }),
      );
    }
  }
  return lines;
}

/** Clock ticks per second of /proc's CPU times. */
const CLOCK_TICKS = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

/** CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name (which may hold spaces, in parentheses): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

export async function startFleet(
  env: TestEnv,
  count: number,
  vars: Record<string, string>,
  opts: { cpuProfDir?: string; nodeArgs?: string[] } = {},
): Promise<{ stop(): Promise<void>; cpuMs(): number; pids(): number[] }> {
  // With a profile asked for, each worker writes it into cpuProfDir when it exits: stopped by SIGTERM, not killed.
  const nodeArgs = [
    ...(opts.nodeArgs ?? []),
    ...(opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`] : []),
  ];
  const workers: WorkerProcess[] = Array.from({ length: count }, () =>
    spawnWorker(env.env({ LOG_LEVEL: 'error', ...vars }), [], nodeArgs),
  );
  return {
    /** CPU time the worker processes have used so far (ms). */
    cpuMs: () => workers.reduce((sum, w) => sum + processCpuMs(w.child.pid!), 0),
    pids: () => workers.map((w) => w.child.pid!),
    async stop() {
      for (const w of workers) w.child.kill(opts.cpuProfDir ? 'SIGTERM' : 'SIGKILL');
      await Promise.all(workers.map((w) => w.exited));
    },
  };
}

/**
 * Runs `body` with a fresh prefix and one `chatq worker` process (started and given a moment to connect), then stops
 * the worker and removes the prefix's keys.
 */
export async function withWorker<T>(vars: Record<string, string>, body: (env: TestEnv) => Promise<T>): Promise<T> {
  const env = await createTestEnv();
  const fleet = await startFleet(env, 1, vars);
  try {
    await sleep(1_500);
    return await body(env);
  } finally {
    await fleet.stop();
    await env.cleanup();
  }
}

/**
 * A `fetch` for the openai SDK over chatq's upstream connections to `baseURL` (undici's request() on keep-alive
 * connections, as many as the concurrency): the plain loop given chatq's transport, without the WHATWG fetch machinery.
 */
export function transportFetch(baseURL: string, connections: number): typeof fetch {
  const pool = new UpstreamConnections(new URL(baseURL).origin, connections);
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => {
      headers[k] = v;
    });
    const res = await pool.call(input instanceof Request ? input.url : String(input), {
      method: (init.method ?? 'GET') as 'GET',
      headers,
      body: (init.body ?? null) as string | null,
      signal: init.signal ?? undefined,
    });
    const empty = res.status === 204 || res.status === 304 || res.status < 200;
    return new Response(empty ? null : new Uint8Array(res.bytes), {
      status: res.status,
      headers: headersOf(res.headers),
    });
  }) as typeof fetch;
}

type LoopResult = { ok: number; status429: number; other: number; ms: number; cpuMs: number };

/** Runs `body` (the calls of a loop, each counted into the result), timed, with the process's CPU time it took. */
async function timedLoop(
  baseURL: string,
  fetch: typeof globalThis.fetch | undefined,
  body: (call: (user: number, text: string) => Promise<void>) => Promise<unknown>,
): Promise<LoopResult> {
  const client = new OpenAI({ baseURL, apiKey: 'bench', maxRetries: 0, ...(fetch ? { fetch } : {}) });
  const result = { ok: 0, status429: 0, other: 0, ms: 0, cpuMs: 0 };
  const call = async (user: number, text: string) => {
    try {
      await client.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: text }],
        userid: legacyUserid(`bench-${user}`),
      } as never);
      result.ok += 1;
    } catch (err) {
      if ((err as { status?: number }).status === 429) result.status429 += 1;
      else result.other += 1;
    }
  };
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  await body(call);
  result.ms = Date.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  result.cpuMs = (cpu.user + cpu.system) / 1000;
  return result;
}

/**
 * The plain script a user would otherwise write: a p-limit loop over the openai SDK, no queue, no store. Its calls
 * are independent (1,000 userids in turn, in no order): it keeps no user's turns in order, as chatq must.
 */
export async function plainLoop(
  baseURL: string,
  calls: number,
  concurrency: number,
  deadlineMs = Infinity,
  fetch?: typeof globalThis.fetch,
): Promise<LoopResult> {
  const limit = pLimit(concurrency);
  const t0 = Date.now();
  return timedLoop(baseURL, fetch, (call) =>
    Promise.all(
      Array.from({ length: calls }, (_, i) =>
        limit(async () => {
          if (Date.now() - t0 <= deadlineMs) await call(i % 1000, `[seq 0] hello from user ${i}, tell me something`);
        }),
      ),
    ),
  );
}

/**
 * The same plain loop keeping each user's turns in order, as a memory endpoint needs (and chatq does): each of
 * `users` sends its `turns` one after the other, every call through one p-limit of `concurrency`.
 */
export async function orderedLoop(
  baseURL: string,
  users: number,
  turns: number,
  concurrency: number,
): Promise<LoopResult> {
  const limit = pLimit(concurrency);
  return timedLoop(baseURL, undefined, (call) =>
    Promise.all(
      Array.from({ length: users }, async (_, u) => {
        for (let t = 0; t < turns; t++)
          await limit(() => call(u, `[seq ${t}] hello from user ${u}, tell me something`));
      }),
    ),
  );
}

/** The simulator in its own process (as `chatq simulator`), so it does not share a core with what is measured. */
export async function startSimulatorProcess(
  args: string[],
): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const { spawn } = await import('node:child_process');
  const { freePort } = await import('../src/cli/local-redis.js');
  const { CLI } = await import('../test/helpers/test-env.js');
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'simulator', '--port', String(port), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  const exited = new Promise((r) => child.once('exit', r));
  return {
    url: `http://127.0.0.1:${port}/v1`,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** bench/otlp-sink.ts in its own process: its URL, and what it received once stopped. */
export async function startOtlpSinkProcess(): Promise<{
  url: string;
  stop(): Promise<{ spans: number; traces: number }>;
}> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./otlp-sink.ts', import.meta.url))],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines: string[] = [];
  let next: (() => void) | undefined;
  child.stdout!.on('data', (d: Buffer) => {
    lines.push(...d.toString().split('\n').filter(Boolean));
    next?.();
  });
  const line = (n: number) =>
    new Promise<string>((resolve) => {
      next = () => lines.length > n && resolve(lines[n]!);
      next();
    });
  const url = await line(0);
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      return JSON.parse(await line(1)) as { spans: number; traces: number };
    },
  };
}

/** Raw BullMQ: `jobs` jobs added in bulk, a processor that only sleeps `sleepMs` (0: a no-op); jobs/s. */
export async function rawBullmq(jobs: number, concurrency: number, sleepMs = 0): Promise<number> {
  const { Queue, Worker } = await import('bullmq');
  const { connectRedis } = await import('../src/shared/redis/redis.js');
  const { createTestEnv } = await import('../test/helpers/test-env.js');
  const env = await createTestEnv();
  const queue = new Queue('raw', { connection: env.redis, prefix: env.prefix });
  let done = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((r) => (finish = r));
  const connection = connectRedis(env.config());
  const worker = new Worker(
    'raw',
    async () => {
      if (sleepMs) await sleep(sleepMs);
      if (++done === jobs) finish();
    },
    { connection, prefix: env.prefix, concurrency, removeOnComplete: { count: 0 } },
  );
  await worker.waitUntilReady();
  const t0 = Date.now();
  for (let i = 0; i < jobs; i += 1000) {
    await queue.addBulk(
      Array.from({ length: Math.min(1000, jobs - i) }, (_, j) => ({ name: 'raw', data: { i: i + j } })),
    );
  }
  await finished;
  const perSecond = (jobs / (Date.now() - t0)) * 1000;
  await worker.close();
  await queue.close();
  connection.disconnect();
  await env.cleanup();
  return perSecond;
}
