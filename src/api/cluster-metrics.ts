import { collectDefaultMetrics, Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '../shared/latency-buckets.js';
import { listUsage, type UsageRow } from '../shared/read-store.js';
import type { ApiDeps } from './api-deps.js';

interface Snapshot {
  counters: Record<string, string>;
  models: UsageRow[];
  jobs: Record<string, number>;
  lanes: number;
  paused: boolean;
}

interface Sample {
  value: number;
  labels?: Record<string, string>;
  metricName?: string;
}

/**
 * Prometheus metrics for the whole cluster, read from Redis at scrape time (what every worker wrote), so any
 * API instance reports the same figures: requests by outcome, call latency, tokens, cost, queue depth, 429s.
 */
export function createClusterMetrics(deps: ApiDeps): { registry: Registry; scrape(): Promise<string> } {
  const { redis, keys } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'chatq_api_' });
  let current: Promise<Snapshot> | undefined;

  const read = async (): Promise<Snapshot> => {
    const [counters, models, jobs, lanes, paused] = await Promise.all([
      redis.hgetall(keys.metrics),
      listUsage(redis, keys, 'model'),
      deps.queue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'failed'),
      redis.scard(keys.lanes),
      redis.exists(keys.pauseReason),
    ]);
    return { counters, models, jobs, lanes, paused: paused === 1 };
  };

  const define = (name: string, help: string, type: 'counter' | 'gauge' | 'histogram', samples: (s: Snapshot) => Sample[]) => {
    registry.registerMetric({
      name,
      help,
      type,
      get: async () => ({ name, help, type, aggregator: 'sum', values: samples(await current!) }),
    } as never);
  };
  const count = (s: Snapshot, field: string) => Number(s.counters[field] ?? 0);
  const perModel = (pick: (u: UsageRow) => number) => (s: Snapshot) => s.models.map((u) => ({ labels: { model: u.key }, value: pick(u) }));

  define('chatq_requests_total', 'Requests finished, by outcome.', 'counter', (s) =>
    ['succeeded', 'failed'].map((outcome) => ({ labels: { outcome }, value: count(s, `requests:${outcome}`) })),
  );
  define('chatq_request_latency_seconds', 'Latency of answered upstream calls.', 'histogram', (s) => {
    let cumulative = 0;
    const buckets = [...LATENCY_BUCKETS.map(String), '+Inf'].map((le) => {
      cumulative += count(s, `latency_bucket:${le}`);
      return { metricName: 'chatq_request_latency_seconds_bucket', labels: { le }, value: cumulative };
    });
    return [
      ...buckets,
      { metricName: 'chatq_request_latency_seconds_sum', value: count(s, 'latency_sum_ms') / 1000 },
      { metricName: 'chatq_request_latency_seconds_count', value: cumulative },
    ];
  });
  define('chatq_tokens_total', 'Tokens used, by model and kind (cached is part of prompt, reasoning part of completion).', 'counter', (s) =>
    s.models.flatMap((u) =>
      (['prompt', 'cached', 'completion', 'reasoning'] as const).map((kind) => ({ labels: { model: u.key, kind }, value: u[`${kind}_tokens`] })),
    ),
  );
  define('chatq_cost_usd_total', 'Cost of priced requests, by model.', 'counter', perModel((u) => u.cost_nano / 1e9));
  define('chatq_unpriced_requests_total', 'Requests of models without a price (cost unknown).', 'counter', perModel((u) => u.unpriced));
  define('chatq_queue_jobs', 'BullMQ jobs by state (at most one per user with work).', 'gauge', (s) =>
    Object.entries(s.jobs).map(([state, value]) => ({ labels: { state }, value })),
  );
  define('chatq_active_lanes', 'Users with unfinished requests.', 'gauge', (s) => [{ value: s.lanes }]);
  define('chatq_queue_paused', '1 while the queue is paused (credentials, balance, quota).', 'gauge', (s) => [{ value: s.paused ? 1 : 0 }]);
  define('chatq_upstream_429_total', 'Rate-limit answers (429) received from the upstream.', 'counter', (s) => [{ value: count(s, 'upstream_429') }]);

  return {
    registry,
    async scrape() {
      current = read();
      return registry.metrics();
    },
  };
}
