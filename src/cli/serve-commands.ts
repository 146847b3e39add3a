import { createLogger } from '../shared/logger.js';
import { startSimulator } from '../simulator/simulator-server.js';
import { simulatorOptionsSchema } from '../simulator/simulator-options.js';
import { describeWorker, WorkerPool } from '../worker/worker-pool.js';
import { startHealthServer } from '../worker/health-server.js';
import { holdHeapGrowth } from '../worker/heap-growth.js';
import { startApiService } from './api-service.js';
import { startProducerServices } from './producer-services.js';
import {
  EXIT,
  limitOverrides,
  listening,
  parsePort,
  readConfig,
  requireRedis,
  usageErrorOf,
  UsageError,
  type LimitFlags,
} from './cli-context.js';

/** Resolves on the first SIGTERM/SIGINT; a second one exits at once. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    let seen = false;
    const on = (sig: string) => {
      if (seen) process.exit(130);
      seen = true;
      resolve(sig);
    };
    process.on('SIGINT', () => on('SIGINT'));
    process.on('SIGTERM', () => on('SIGTERM'));
  });
}

/** `--shards 0,2,4`: shard indexes under CHATQ_SHARDS, each once. */
function parseShards(list: string, count: number): number[] {
  const shards = list.split(',').map((s) => s.trim());
  const bad = shards.find((s) => !/^\d{1,2}$/.test(s) || Number(s) >= count);
  if (bad !== undefined || shards.length === 0)
    throw new UsageError(
      `--shards: "${bad ?? list}" is not a shard: expected indexes from 0 to ${count - 1} (CHATQ_SHARDS=${count}), comma-separated`,
    );
  return [...new Set(shards.map(Number))];
}

/** `chatq worker`: processes requests until SIGTERM/SIGINT, then lets in-flight calls finish. */
export async function workerCommand(
  flags: LimitFlags & { shards?: string; healthPort?: string; healthHost?: string },
): Promise<number> {
  const config = readConfig(limitOverrides(flags));
  if (!config.baseUrl)
    throw new UsageError(
      'no upstream: set CHATQ_API_KEY (302.AI) or CHATQ_BASE_URL (e.g. a "chatq simulator" at http://127.0.0.1:4010/v1).',
    );
  const shards = flags.shards === undefined ? undefined : parseShards(flags.shards, config.shards);
  const healthPort = flags.healthPort === undefined ? undefined : parsePort(flags.healthPort);
  await requireRedis(config, { waitWhileClusterDown: true });
  const logger = createLogger(config.logLevel, 'chatq-worker');
  holdHeapGrowth(config.heapGrowthPercent);
  const pool = await WorkerPool.start({ config, baseUrl: config.baseUrl, logger, ...(shards ? { shards } : {}) }).catch(
    (err: unknown) => {
      throw usageErrorOf(err);
    },
  );
  const producer = startProducerServices(config, logger);
  const health =
    healthPort === undefined
      ? undefined
      : await listening(healthPort, () =>
          startHealthServer(healthPort, flags.healthHost ?? '127.0.0.1', () => pool.readiness()),
        );
  const d = describeWorker(config, config.baseUrl);
  process.stderr.write(
    `chatq worker: upstream ${d.upstream} · ${d.concurrency} calls in flight · rpm ${d.rpm} · tpm ${d.tpm}${Object.keys(d.modelLimits).length ? ` · per model ${JSON.stringify(d.modelLimits)}` : ''} · ${d.maxAttempts} attempts · timeout ${d.timeoutMs} ms (SIGTERM to stop)\n`,
  );
  const signal = await untilSignal();
  logger.info({ signal }, 'stopping: waiting for in-flight calls');
  await Promise.all([pool.close(), producer.close()]);
  await health?.close();
  logger.info('worker stopped');
  return EXIT.ok;
}

export interface SimulatorFlags {
  port?: string;
  host?: string;
  latencyMs?: string;
  jitterMs?: string;
  rpm?: string;
  tpm?: string;
  apiKey?: string;
  fail5xx?: string;
  fail429?: string;
  failTimeout?: string;
  failDrop?: string;
  failMalformed?: string;
}

const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

/** `chatq simulator`: the local memory-chat endpoint, until SIGTERM/SIGINT. */
export async function simulatorCommand(flags: SimulatorFlags): Promise<number> {
  const parsed = simulatorOptionsSchema.safeParse({
    latencyMs: num(flags.latencyMs),
    jitterMs: num(flags.jitterMs),
    rpm: num(flags.rpm),
    tpm: num(flags.tpm),
    apiKey: flags.apiKey,
    faults: {
      error5xx: num(flags.fail5xx),
      rateLimit429: num(flags.fail429),
      timeout: num(flags.failTimeout),
      drop: num(flags.failDrop),
      malformed: num(flags.failMalformed),
    },
  });
  if (!parsed.success)
    throw new UsageError(
      `simulator: ${parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  const port = parsePort(flags.port ?? '4010');
  const sim = await listening(port, () => startSimulator(parsed.data, port, flags.host ?? '127.0.0.1'));
  process.stdout.write(
    `simulator listening at ${sim.url} (stats: GET http://${flags.host ?? '127.0.0.1'}:${sim.port}/_sim/stats)\n`,
  );
  await untilSignal();
  await sim.close();
  return EXIT.ok;
}

/** `chatq serve`: the HTTP API (OpenAI Batch-compatible) and the batch importer, until SIGTERM/SIGINT. */
export async function serveCommand(flags: { port?: string; host?: string; maxUploadMb?: string }): Promise<number> {
  const config = readConfig();
  if (config.apiTokens.length === 0)
    throw new UsageError('set CHATQ_API_TOKENS (comma-separated bearer tokens): the API refuses to run without auth.');
  await requireRedis(config, { waitWhileClusterDown: true });
  const logger = createLogger(config.logLevel, 'chatq-api');
  const port = parsePort(flags.port ?? '8080');
  const maxUploadMb = Number(flags.maxUploadMb ?? 512);
  if (!(maxUploadMb > 0))
    throw new UsageError(`--max-upload-mb: expected a positive number, got "${flags.maxUploadMb}"`);
  const api = await listening(port, () =>
    startApiService(config, logger, port, flags.host ?? '127.0.0.1', maxUploadMb * 1024 * 1024),
  );
  logger.info({ url: api.url }, 'API listening');
  process.stderr.write(
    `chatq API at ${api.url} (OpenAI Batch API under /v1, metrics at /metrics, queues at /admin/queues)\n`,
  );
  await untilSignal();
  await api.close();
  return EXIT.ok;
}
