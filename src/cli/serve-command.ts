import { createLogger } from '../shared/logger.js';
import { startApiService } from './api-service.js';
import { untilSignal } from './until-signal.js';
import { EXIT, listening, parsePort, readConfig, requireRedis, UsageError } from './cli-context.js';

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
