import { type ApiToken, type Env, envSchema, HEAP_GROWTH_BY_CONCURRENCY } from './config-env.js';
import type { UseridSettings } from './userid.js';

/**
 * The heap's growth held from MANY_CALLS_IN_FLIGHT calls in flight. bench/high-concurrency, 2,000 in flight, against
 * 30: worker peak RSS 273-277 MB (249-252), CPU per request 1,024-1,049 µs (1,112-1,181), 0.96-0.99x the plain loop's
 * speed (0.93-0.95x); V8's own growth: about 407 MB.
 */
const HELD_HEAP_GROWTH_PERCENT = 60;
/** From this many calls in flight, a worker holds its heap's growth by default (Config.heapGrowthPercent). */
export const MANY_CALLS_IN_FLIGHT = 500;

/** A webhook receiver: its URL and the Standard Webhooks secret events are signed with. */
export interface WebhookEndpoint {
  url: string;
  secret: string;
}

export interface ScheduleLimits {
  minIntervalMs: number;
  maxModels: number;
  perProject: number;
}

export interface Config {
  redisUrl: string;
  /** REDIS_URL names the seed nodes of a Redis Cluster (CHATQ_REDIS_CLUSTER=1). */
  redisCluster: boolean;
  /** The CA file that a rediss:// server's certificate is checked against (CHATQ_REDIS_CA); the system's CAs otherwise. */
  redisCa: string | undefined;
  prefix: string;
  /** Hash tags users are spread over (CHATQ_SHARDS): a Redis Cluster places them on different masters. */
  shards: number;
  /** Upstream base URL; undefined means "no upstream configured" (the CLI then starts the simulator). */
  baseUrl: string | undefined;
  apiKey: string | undefined;
  defaultModel: string | undefined;
  /**
   * The judge (expect.judge): its default model (CHATQ_JUDGE_MODEL; else the answering request's model) and its own
   * upstream when set (CHATQ_JUDGE_BASE_URL, CHATQ_JUDGE_API_KEY; else the same upstream, called without userid).
   */
  judge: { model: string | undefined; baseUrl: string | undefined; apiKey: string | undefined };
  rpm: number;
  tpm: number;
  modelLimits: Record<string, { rpm?: number; tpm?: number }>;
  /** Calls whose token bound is over this share of the TPM limit are large: together they hold at most that share. */
  largeShare: number;
  concurrency: number;
  /** Each project's weight in the shares of call slots, rate limits and import work (CHATQ_PROJECT_WEIGHTS; absent: 1). */
  projectWeights: Record<string, number>;
  maxAttempts: number;
  timeoutMs: number;
  backoffMs: number;
  /** How long a request waits out an unreachable upstream before that counts as a failed attempt. */
  maxOutageMs: number;
  defaultMaxTokens: number;
  lockMs: number;
  /**
   * Replicas that must hold a call's claim before it is sent, and a result before it is reported
   * (CHATQ_REDIS_WAIT_REPLICAS, 0 = none), and how long to wait for them (CHATQ_REDIS_WAIT_MS).
   */
  waitReplicas: { count: number; timeoutMs: number };
  /** How long a job goes on with its lane's next requests before it hands the lane back to the queue (0: one each). */
  laneSliceMs: number;
  /**
   * How far (%) a worker process's JavaScript heap may grow past what its last full collection kept, before the next
   * (CHATQ_HEAP_GROWTH_PERCENT; 0: V8 decides, up to 4x). By default HELD_HEAP_GROWTH_PERCENT from MANY_CALLS_IN_FLIGHT calls in flight,
   * else 0: a call in flight for seconds outlives the young generation, so what thousands of them allocate ends as
   * garbage in the old one, which V8 otherwise lets grow to several times what is live (bench/high-concurrency).
   */
  heapGrowthPercent: number;
  reconcileMs: number;
  resultTtlS: number;
  /**
   * Userids: the secret derived ones are keyed with (CHATQ_USERID_SECRET; else a key generated into Redis), and how
   * long a userid stays the project's that first sent it (CHATQ_USERID_HOLD_DAYS; 0: for ever, as the endpoint's
   * memory does not expire).
   */
  userids: UseridSettings;
  /** Days of daily usage detail kept; older days roll up into months. */
  usageDays: number;
  pricesFile: string | undefined;
  /** An upload that sends nothing for this long ends with 408 (CHATQ_UPLOAD_IDLE_MS). */
  uploadIdleMs: number;
  /** Bounds on schedules: the least time between two firings, models per schedule, schedules per project. */
  schedules: ScheduleLimits;
  apiTokens: ApiToken[];
  /** Tokens that see every project and alone open /admin/queues. */
  adminTokens: string[];
  /** Where batch events are sent: per project, else the default endpoint (none: events are not sent). */
  webhooks: { fallback?: WebhookEndpoint; projects: Record<string, WebhookEndpoint> };
  /** Proxies whose X-Forwarded-For/-Proto the API believes (client address, https): all (true), these, or none. */
  trustProxy: boolean | string[];
  logLevel: Env['LOG_LEVEL'];
}

export const DEFAULT_BASE_URL = 'https://api.302.ai/v1';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Reads and validates the environment once; every problem is reported on its own line. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => (i.message.includes(':') ? i.message : `${i.path.join('.')}: ${i.message}`)),
    );
  }
  const e = parsed.data;
  if ((e.CHATQ_WEBHOOK_URL === undefined) !== (e.CHATQ_WEBHOOK_SECRET === undefined)) {
    throw new ConfigError([
      'CHATQ_WEBHOOK_URL and CHATQ_WEBHOOK_SECRET go together: set both (events are signed) or neither',
    ]);
  }
  return {
    redisUrl: e.REDIS_URL,
    redisCluster: e.CHATQ_REDIS_CLUSTER === '1' || e.CHATQ_REDIS_CLUSTER === 'true',
    redisCa: e.CHATQ_REDIS_CA,
    prefix: e.CHATQ_PREFIX,
    shards: e.CHATQ_SHARDS,
    baseUrl: e.CHATQ_BASE_URL ?? (e.CHATQ_API_KEY ? DEFAULT_BASE_URL : undefined),
    apiKey: e.CHATQ_API_KEY,
    defaultModel: e.CHATQ_MODEL,
    judge: { model: e.CHATQ_JUDGE_MODEL, baseUrl: e.CHATQ_JUDGE_BASE_URL, apiKey: e.CHATQ_JUDGE_API_KEY },
    rpm: e.CHATQ_RPM,
    tpm: e.CHATQ_TPM,
    modelLimits: e.CHATQ_MODEL_LIMITS,
    largeShare: e.CHATQ_LARGE_CALL_SHARE,
    concurrency: e.CHATQ_CONCURRENCY,
    projectWeights: e.CHATQ_PROJECT_WEIGHTS,
    maxAttempts: e.CHATQ_MAX_ATTEMPTS,
    timeoutMs: e.CHATQ_TIMEOUT_MS,
    backoffMs: e.CHATQ_BACKOFF_MS,
    maxOutageMs: e.CHATQ_MAX_OUTAGE_MS,
    defaultMaxTokens: e.CHATQ_DEFAULT_MAX_TOKENS,
    lockMs: e.CHATQ_LOCK_MS,
    waitReplicas: { count: e.CHATQ_REDIS_WAIT_REPLICAS, timeoutMs: e.CHATQ_REDIS_WAIT_MS },
    laneSliceMs: e.CHATQ_LANE_SLICE_MS,
    heapGrowthPercent:
      e.CHATQ_HEAP_GROWTH_PERCENT !== HEAP_GROWTH_BY_CONCURRENCY
        ? e.CHATQ_HEAP_GROWTH_PERCENT
        : e.CHATQ_CONCURRENCY >= MANY_CALLS_IN_FLIGHT
          ? HELD_HEAP_GROWTH_PERCENT
          : 0,
    reconcileMs: e.CHATQ_RECONCILE_MS,
    resultTtlS: e.CHATQ_RESULT_TTL_S,
    userids: { secret: e.CHATQ_USERID_SECRET, holdS: e.CHATQ_USERID_HOLD_DAYS * 86_400 },
    usageDays: e.CHATQ_USAGE_DAYS,
    pricesFile: e.CHATQ_PRICES,
    uploadIdleMs: e.CHATQ_UPLOAD_IDLE_MS,
    schedules: {
      minIntervalMs: e.CHATQ_SCHEDULE_MIN_INTERVAL_MS,
      maxModels: e.CHATQ_SCHEDULE_MAX_MODELS,
      perProject: e.CHATQ_SCHEDULES_PER_PROJECT,
    },
    apiTokens: e.CHATQ_API_TOKENS,
    adminTokens: e.CHATQ_ADMIN_TOKENS,
    webhooks: {
      ...(e.CHATQ_WEBHOOK_URL && e.CHATQ_WEBHOOK_SECRET
        ? { fallback: { url: e.CHATQ_WEBHOOK_URL, secret: e.CHATQ_WEBHOOK_SECRET } }
        : {}),
      projects: e.CHATQ_WEBHOOKS,
    },
    trustProxy: e.CHATQ_TRUST_PROXY,
    logLevel: e.LOG_LEVEL,
  };
}
