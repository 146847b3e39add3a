import { createLogger } from '../shared/logger.js';
import { describeWorker, WorkerPool } from '../worker/worker-pool.js';
import { startHealthServer } from '../worker/health-server.js';
import { holdHeapGrowth } from '../worker/heap-growth.js';
import { startProducerServices } from './producer-services.js';
import { untilSignal } from './until-signal.js';
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
  holdHeapGrowth(config, logger);
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
