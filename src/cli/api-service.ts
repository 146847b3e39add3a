import type { AddressInfo } from 'node:net';
import { buildApiServer, type RouteEntry } from '../server/api-server.js';
import { openImportQueue } from '../shared/batches/batch-imports.js';
import type { Config } from '../shared/config.js';
import { redisKeys } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { connectRedis } from '../shared/redis/redis.js';
import { RequestQueues } from '../shared/redis/request-queue.js';
import { checkShardCount } from '../shared/redis/shard-count.js';
import { openScheduleQueue } from '../shared/files/schedules.js';
import { startProducerServices } from './producer-services.js';
import { StoreWatch } from '../http/store-watch.js';
import { within } from '../shared/time-bound.js';

export interface ApiService {
  url: string;
  /** Every route it answers (method and path pattern). */
  routes: RouteEntry[];
  close(): Promise<void>;
}

/** How long each step of closing the server may take (Redis out of reach: its commands never answer). */
const CLOSE_WITHIN_MS = 5_000;

/** Default upload limit: 512 MiB. */
export const DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024;

/** The HTTP API plus the producer services (imports of uploaded batches, scheduled runs): what `chatq serve` runs. */
export async function startApiService(
  config: Config,
  logger: Logger,
  port: number,
  host = '127.0.0.1',
  maxUploadBytes = DEFAULT_MAX_UPLOAD_BYTES,
): Promise<ApiService> {
  // A route's command fails after 5 s without an answer; new requests are answered at once while Redis is out of reach.
  const redis = connectRedis(config, 'chatq-api', { commandTimeoutMs: 5_000 });
  const store = new StoreWatch(redis).start();
  const keys = redisKeys(config.prefix, config.shards);
  await checkShardCount(redis, keys);
  const queues = new RequestQueues(redis, keys, { weights: config.projectWeights, slots: config.concurrency });
  const imports = openImportQueue(redis, config.prefix);
  const schedules = openScheduleQueue(redis, config.prefix);
  const producer = startProducerServices(config, logger);
  const { app, routes } = await buildApiServer(
    { redis, keys, queues, imports, schedules, config, maxUploadBytes, store },
    logger,
  );
  await app.listen({ port, host });
  const address = app.server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    routes,
    /** Closes the server and its background work, within a bound whether Redis answers or not. */
    async close() {
      store.close();
      await within(app.close(), CLOSE_WITHIN_MS);
      await within(
        Promise.all([producer.close(), imports.close(), schedules.close(), queues.close()]),
        CLOSE_WITHIN_MS,
      );
      redis.disconnect();
    },
  };
}
