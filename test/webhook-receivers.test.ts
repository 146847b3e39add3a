import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { createBatchRecord } from '../src/shared/batches/batch-imports.js';
import { newBatchId } from '../src/shared/ids.js';
import { failImport } from '../src/shared/batches/import-failure.js';
import { WEBHOOK_QUEUE, type WebhookJob } from '../src/webhooks/webhook-delivery.js';
import { startWebhookService, type WebhookService } from '../src/webhooks/webhook-service.js';
import { useTestEnv } from './helpers/in-process-worker.js';
import { runCli, testLogger, waitFor } from './helpers/test-env.js';

const secret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** A receiver that answers `status` to every delivery, or never answers at all (null). */
async function receiver(
  status: number | null,
): Promise<{ server: Server; url: string; got: { at: number; body: string }[] }> {
  const got: { at: number; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      got.push({ at: Date.now(), body });
      if (status !== null) res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, got };
}

describe('webhook receivers are apart', () => {
  const t = useTestEnv();
  const servers: Server[] = [];
  let service: WebhookService | undefined;
  afterEach(async () => {
    await service?.close();
    for (const s of servers) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  /** A batch of `project` that ends (its import failed): one batch.failed event. */
  const endedBatch = async (project: string) => {
    const id = newBatchId();
    await createBatchRecord(t.env.redis, t.env.keys, {
      batchId: id,
      project,
      name: 'x',
      input: 'x.jsonl',
      metadata: {},
    });
    await failImport(t.env.redis, t.env.keys, t.env.queues, id, { code: 'import_failed', message: 'test' }, 0, 3600);
    return id;
  };

  it("one project's hanging receiver does not delay another's events, and is paused after failing again and again", async () => {
    const alpha = await receiver(null);
    const beta = await receiver(200);
    const gamma = await receiver(500);
    servers.push(alpha.server, beta.server, gamma.server);
    const hooks = {
      CHATQ_WEBHOOKS: JSON.stringify({
        alpha: { url: alpha.url, secret: secret() },
        beta: { url: beta.url, secret: secret() },
        gamma: { url: gamma.url, secret: secret() },
      }),
    };
    const config = t.env.config(hooks);
    // Sixteen of alpha's events first, queued before beta's.
    for (let i = 0; i < 16; i++) await endedBatch('alpha');
    service = startWebhookService(config, t.env.redis, t.env.keys, testLogger());
    await waitFor('alpha hanging', async () => alpha.got.length >= 1, 10_000);
    const sent = Date.now();
    const betaBatch = await endedBatch('beta');
    await waitFor("beta's event", async () => beta.got.some((g) => g.body.includes(betaBatch)), 10_000, 20);
    const late = beta.got.find((g) => g.body.includes(betaBatch))!.at - sent;
    expect(late).toBeLessThan(2_000);
    // The hanging receiver holds at most its own share of the deliveries in flight.
    expect(alpha.got.length).toBeLessThanOrEqual(2);

    // A receiver that fails delivery after delivery is paused, and `chatq webhooks` says so.
    const gammas = new Set<string>();
    for (let i = 0; i < 6; i++) gammas.add(await endedBatch('gamma'));
    await waitFor(
      'gamma paused',
      async () => {
        const out = await runCli(['webhooks'], t.env.env(hooks));
        return /gamma.*paused/.test(out.stdout) ? out : undefined;
      },
      30_000,
      500,
    );
    // Every one of its events is put off until its pause ends (not one waits for an earlier attempt time).
    const attempts = gamma.got.length;
    const pausedUntil = Number(await t.env.redis.hget(t.env.keys.webhookReceiver('gamma'), 'paused_until'));
    const queue = new Queue<WebhookJob>(WEBHOOK_QUEUE, { connection: t.env.redis, prefix: t.env.keys.prefix });
    await waitFor('every gamma event put off past the pause', async () => {
      const delayed = (await queue.getDelayed()).filter((j) => gammas.has(j.data.batch));
      const due = await Promise.all(delayed.map((j) => t.env.redis.zscore(queue.keys.delayed!, j.id!)));
      // BullMQ scores a delayed job by its due time (ms) x 0x1000.
      return delayed.length === gammas.size && due.every((d) => Math.floor(Number(d) / 0x1000) >= pausedUntil);
    });
    await queue.close();
    expect(gamma.got.length).toBe(attempts);
  });
});
