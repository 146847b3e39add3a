import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startApiService } from '../src/cli/api-service.js';
import { freePort, startLocalRedis } from '../src/cli/local-redis.js';
import { resumeQueue } from '../src/shared/redis/queue-control.js';
import { startSimulator } from '../src/simulator/simulator-server.js';
import { startWorker } from './helpers/in-process-worker.js';
import { createTestEnv, testLogger, waitFor } from './helpers/test-env.js';

const RULES = fileURLToPath(new URL('../deploy/prometheus/chatq-rules.yml', import.meta.url));
const ADMIN = 'prometheus-admin-token';

/** The shipped rules with every `for:` at 0 s: an alert fires on the first evaluation that sees its condition. */
const immediateRules = () => readFileSync(RULES, 'utf8').replace(/^(\s+)for: \S+$/gm, '$1for: 0s');

interface Alert {
  labels: { alertname: string };
  state: string;
}

describe('the shipped alert rules on a real Prometheus scraping a running chatq', () => {
  it('a refused key, a receiver answering 500 and Redis gone fire their alerts; each resolves once cleared', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chatq-prometheus-'));
    const redis = await startLocalRedis({ appendfsync: 'off', dir });
    const env = await createTestEnv(redis.url);
    const sim = await startSimulator({ latencyMs: 0, apiKey: 'the-right-key' });
    // A webhook receiver that fails until told otherwise.
    let answer = 500;
    const receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(answer).end());
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const hooks = {
      CHATQ_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hooks`,
      CHATQ_WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
    };
    const api = await startApiService(env.config({ CHATQ_ADMIN_TOKENS: ADMIN, ...hooks }), testLogger(), 0);
    const pool = await startWorker(env.config({ CHATQ_API_KEY: 'a-wrong-key' }), sim.url);
    const promPort = await freePort();
    writeFileSync(join(dir, 'rules.yml'), immediateRules());
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'rule_files: [rules.yml]',
        'scrape_configs:',
        '  - job_name: chatq',
        `    authorization: { credentials: ${ADMIN} }`,
        `    static_configs: [{ targets: ["${new URL(api.url).host}"] }]`,
        '',
      ].join('\n'),
    );
    const prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { cwd: dir, stdio: 'ignore' },
    );
    const alerts = async (): Promise<Alert[]> => {
      const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/alerts`);
      return ((await res.json()) as { data: { alerts: Alert[] } }).data.alerts;
    };
    const state = async (name: string) => (await alerts()).find((a) => a.labels.alertname === name)?.state;
    const seen: string[] = [];
    /** Induces a fault, waits for the alert to fire, clears the fault, waits for the alert to resolve. */
    const faultCycle = async (alert: string, induce: () => Promise<unknown>, clear: () => Promise<unknown>) => {
      await induce();
      await waitFor(`${alert} firing`, async () => (await state(alert)) === 'firing', 60_000, 250);
      seen.push(`${alert} fired`);
      await clear();
      await waitFor(`${alert} resolved`, async () => (await state(alert)) === undefined, 60_000, 500);
      seen.push(`${alert} resolved`);
    };
    let back = redis;
    try {
      await waitFor('Prometheus up, scraping chatq, nothing firing', async () => {
        const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=up`).catch(() => undefined);
        const up = res?.ok ? ((await res.json()) as { data: { result: { value: [number, string] }[] } }) : undefined;
        return up?.data.result[0]?.value[1] === '1' && (await alerts()).length === 0;
      });

      // The upstream refuses the worker's key: the first call pauses the queue. Cleared: the key is right, resumed.
      const line = { custom_id: 'c1', user: 'u1', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };
      await faultCycle(
        'ChatqQueuePaused',
        () => env.submit(JSON.stringify(line)),
        async () => {
          sim.configure({ apiKey: 'a-wrong-key' });
          await resumeQueue(env.queues, env.redis, env.keys);
        },
      );
      // The batch completes; its event goes to a receiver answering 500, until it answers 200.
      await faultCycle(
        'ChatqWebhooksFailing',
        async () => undefined,
        async () => {
          answer = 200;
        },
      );
      // Redis gone: the API answers its scrape 503, so the target is down.
      await faultCycle(
        'ChatqUnreachable',
        async () => redis.process.kill('SIGKILL'),
        async () => {
          back = await startLocalRedis({ port: redis.port, dir, appendfsync: 'off' });
        },
      );
      expect(seen).toHaveLength(6);
    } finally {
      prometheus.kill('SIGKILL');
      const killed = redis.process.exitCode !== null || redis.process.signalCode !== null;
      if (back === redis && killed) back = await startLocalRedis({ port: redis.port, dir, appendfsync: 'off' });
      await pool.close();
      await api.close();
      await sim.close();
      await new Promise((r) => receiver.close(r));
      await env.cleanup();
      await back.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
