import { collectDefaultMetrics, Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '../shared/latency-buckets.js';
import { listUsage, projectsOf, sumOverTags, type UsageRow } from '../shared/batches/read-store.js';
import { everyTag } from '../shared/keys.js';
import { projectScope, type Scope } from '../shared/scope.js';
import type { ApiDeps } from '../http/api-deps.js';

interface Snapshot {
  /** Usage by model, per project. */
  models: { project: string; rows: UsageRow[] }[];
  /** Cluster-wide figures, for admins only (a project's token sees its own usage, not the fleet's). */
  fleet: { counters: Record<string, string>; jobs: Record<string, number>; lanes: number; paused: boolean } | null;
}

interface Sample {
  value: number;
  labels?: Record<string, string>;
  metricName?: string;
}

type Define = (name: string, help: string, type: 'counter' | 'gauge' | 'histogram', samples: () => Sample[]) => void;

/** Tokens, cost and outcomes by project and model. */
function usageSeries(define: Define, s: Snapshot): void {
  const perModel = (pick: (u: UsageRow) => number) => () =>
    s.models.flatMap(({ project, rows }) => rows.map((u) => ({ labels: { project, model: u.key }, value: pick(u) })));
  define('chatq_requests_total', 'Requests finished, by project, model and outcome.', 'counter', () =>
    s.models.flatMap(({ project, rows }) =>
      rows.flatMap((u) =>
        (['succeeded', 'failed'] as const).map((outcome) => ({
          labels: { project, model: u.key, outcome },
          value: u[outcome],
        })),
      ),
    ),
  );
  define(
    'chatq_tokens_total',
    'Tokens used, by project, model and kind (cached is part of prompt, reasoning part of completion).',
    'counter',
    () =>
      s.models.flatMap(({ project, rows }) =>
        rows.flatMap((u) =>
          (['prompt', 'cached', 'completion', 'reasoning'] as const).map((kind) => ({
            labels: { project, model: u.key, kind },
            value: u[`${kind}_tokens`],
          })),
        ),
      ),
  );
  define(
    'chatq_cost_usd_total',
    'Cost of priced requests, by project and model.',
    'counter',
    perModel((u) => u.cost_nano / 1e9),
  );
  define(
    'chatq_unpriced_requests_total',
    'Requests of models without a price (cost unknown), by project and model.',
    'counter',
    perModel((u) => u.unpriced),
  );
}

/** Call latency, queue depth, lanes, pause and 429s: what admins see. */
function fleetSeries(define: Define, fleet: NonNullable<Snapshot['fleet']>): void {
  const count = (field: string) => Number(fleet.counters[field] ?? 0);
  define('chatq_request_latency_seconds', 'Latency of answered upstream calls.', 'histogram', () => {
    let cumulative = 0;
    const buckets = [...LATENCY_BUCKETS.map(String), '+Inf'].map((le) => {
      cumulative += count(`latency_bucket:${le}`);
      return { metricName: 'chatq_request_latency_seconds_bucket', labels: { le }, value: cumulative };
    });
    return [
      ...buckets,
      { metricName: 'chatq_request_latency_seconds_sum', value: count('latency_sum_ms') / 1000 },
      { metricName: 'chatq_request_latency_seconds_count', value: cumulative },
    ];
  });
  define('chatq_queue_jobs', 'BullMQ jobs by state (at most one per user with work).', 'gauge', () =>
    Object.entries(fleet.jobs).map(([state, value]) => ({ labels: { state }, value })),
  );
  define('chatq_active_lanes', 'Users with unfinished requests.', 'gauge', () => [{ value: fleet.lanes }]);
  define('chatq_queue_paused', '1 while the queue is paused (credentials, balance, quota).', 'gauge', () => [
    { value: fleet.paused ? 1 : 0 },
  ]);
  define(
    'chatq_webhook_deliveries_total',
    'Webhook delivery attempts, by outcome (delivered; failed: to be tried again; gave_up).',
    'counter',
    () =>
      (['delivered', 'failed', 'gave_up'] as const).map((outcome) => ({
        labels: { outcome },
        value: count(`webhook_${outcome}`),
      })),
  );
  define('chatq_upstream_429_total', 'Rate-limit answers (429) received from the upstream.', 'counter', () => [
    { value: count('upstream_429') },
  ]);
  define(
    'chatq_request_failures_total',
    'Requests finished failed, by reason (the error code; an upstream code chatq does not know is "upstream_error").',
    'counter',
    () =>
      Object.entries(fleet.counters)
        .filter(([field]) => field.startsWith('failed:'))
        .map(([field, n]) => ({ labels: { reason: field.slice('failed:'.length) }, value: Number(n) })),
  );
  define(
    'chatq_budget_refusals_total',
    'Calls not sent because they could take their batch past its max_cost_usd (the batch is then cancelled).',
    'counter',
    () => [{ value: count('budget_refusals') }],
  );
  define('chatq_import_failures_total', 'Batch imports that failed (the batch ended "failed").', 'counter', () => [
    { value: count('import_failed') },
  ]);
}

/**
 * Prometheus metrics for the whole cluster, read from Redis at scrape time (what every worker wrote), so any API
 * instance reports the same figures. Each scrape builds its own registry from one snapshot of what its token may see:
 * tokens, cost and outcomes by project and model; for admins also call latency, queue depth, 429s and this process.
 */
export function createClusterMetrics(deps: ApiDeps): { contentType: string; scrape(scope: Scope): Promise<string> } {
  const { redis, keys } = deps;
  const processMetrics = new Registry();
  collectDefaultMetrics({ register: processMetrics, prefix: 'chatq_api_' });

  const read = async (scope: Scope): Promise<Snapshot> => {
    const projects = await projectsOf(redis, keys, scope);
    const models = await Promise.all(
      projects.map(async (project) => ({
        project,
        rows: await listUsage(redis, keys, projectScope(project), 'model'),
      })),
    );
    if (!scope.all) return { models, fleet: null };
    const [counters, jobs, lanes, paused] = await Promise.all([
      sumOverTags(redis, keys, (k) => k.metrics),
      deps.queues.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'failed'),
      Promise.all(everyTag(keys).map((k) => redis.scard(k.lanes))).then((n) => n.reduce((a, b) => a + b, 0)),
      redis.exists(keys.pauseReason),
    ]);
    return { models, fleet: { counters, jobs, lanes, paused: paused === 1 } };
  };

  return {
    contentType: processMetrics.contentType,
    async scrape(scope) {
      const snapshot = await read(scope);
      const registry = new Registry();
      const define: Define = (name, help, type, samples) =>
        registry.registerMetric({
          name,
          help,
          type,
          get: async () => ({ name, help, type, aggregator: 'sum', values: samples() }),
        } as never);
      usageSeries(define, snapshot);
      if (!snapshot.fleet) return registry.metrics();
      fleetSeries(define, snapshot.fleet);
      return `${await registry.metrics()}\n${await processMetrics.metrics()}`;
    },
  };
}
