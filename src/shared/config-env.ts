import { accessSync, constants } from 'node:fs';
import { z } from 'zod';
import { DEFAULT_PROJECT } from './keys.js';
import { MAX_SHARDS } from './shard-ids.js';

/** chatq's environment variables, each named, bounded and with its default; read into a Config by loadConfig (config.ts). */

/** An API token and the project it belongs to (a bare token belongs to "default"). */
export interface ApiToken {
  project: string;
  token: string;
}

/** The longest delay Node's timers take (a larger one fires after 1 ms). */
const MAX_TIMER_MS = 2_147_483_647;

/** CHATQ_HEAP_GROWTH_PERCENT unset: chosen by the concurrency (Config.heapGrowthPercent). */
export const HEAP_GROWTH_BY_CONCURRENCY = -1;
const intFrom = (name: string, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return dflt;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
        ctx.addIssue({ code: 'custom', message: `${name}: expected an integer ${range}, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

const fractionFrom = (name: string, dflt: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return dflt;
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0 || n > max) {
        ctx.addIssue({ code: 'custom', message: `${name}: expected a number above 0 and at most ${max}, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

const httpUrl = z
  .string()
  .refine((v) => /^https?:\/\//.test(v) && URL.canParse(v), { message: 'expected an http(s) URL' });
const webhookSecret = z
  .string()
  .min(16, { message: 'expected a secret of at least 16 characters (Standard Webhooks: whsec_<base64>)' });
const webhookEndpoint = z.object({ url: httpUrl, secret: webhookSecret }).strict();

/** An environment variable holding JSON of `schema` (empty: {}), with one clear message when it is not. */
const jsonVar = <S extends z.ZodType<Record<string, unknown>>>(schema: S, message: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx): z.output<S> => {
      if (!v) return {} as z.output<S>;
      try {
        return schema.parse(JSON.parse(v));
      } catch {
        ctx.addIssue({ code: 'custom', message });
        return z.NEVER;
      }
    });

const modelLimitsSchema = z.record(
  z.string(),
  z.object({ rpm: z.number().int().min(0).optional(), tpm: z.number().int().min(0).optional() }).strict(),
);

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const PROJECT_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

const canRead = (path: string) => {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

export const envSchema = z.object({
  REDIS_URL: z
    .string()
    .refine((v) => v.split(',').every((s) => URL.canParse(s.includes('://') ? s.trim() : `redis://${s.trim()}`)), {
      message:
        'REDIS_URL: expected a URL such as redis://127.0.0.1:6379 (or, with CHATQ_REDIS_CLUSTER=1, comma-separated seed nodes)',
    })
    .default(DEFAULT_REDIS_URL),
  CHATQ_REDIS_CA: z
    .string()
    .min(1)
    .superRefine((path, ctx) => {
      if (!canRead(path))
        ctx.addIssue({
          code: 'custom',
          message: `CHATQ_REDIS_CA: cannot read the CA file "${path}": give the path of the PEM file of the CA that signed the Redis server's certificate`,
        });
    })
    .optional(),
  CHATQ_REDIS_CLUSTER: z
    .enum(['0', '1', 'true', 'false', ''], { message: 'CHATQ_REDIS_CLUSTER: expected 1 or 0' })
    .optional(),
  CHATQ_PREFIX: z
    .string()
    .regex(/^\{[A-Za-z0-9_.-]+\}$/, {
      message: 'CHATQ_PREFIX: expected a hash tag such as {chatq} (letters, digits, _ . - inside braces)',
    })
    .default('{chatq}'),
  CHATQ_SHARDS: intFrom('CHATQ_SHARDS', 1, 1, MAX_SHARDS),
  CHATQ_BASE_URL: z
    .string()
    .url({ message: 'CHATQ_BASE_URL: expected a URL such as https://api.302.ai/v1' })
    .optional(),
  CHATQ_API_KEY: z.string().min(1).optional(),
  CHATQ_MODEL: z.string().min(1).optional(),
  CHATQ_JUDGE_MODEL: z.string().min(1).optional(),
  CHATQ_JUDGE_BASE_URL: z
    .string()
    .url({ message: 'CHATQ_JUDGE_BASE_URL: expected a URL such as https://api.openai.com/v1' })
    .optional(),
  CHATQ_JUDGE_API_KEY: z.string().min(1).optional(),
  CHATQ_RPM: intFrom('CHATQ_RPM', 0),
  CHATQ_TPM: intFrom('CHATQ_TPM', 0),
  CHATQ_LARGE_CALL_SHARE: fractionFrom('CHATQ_LARGE_CALL_SHARE', 0.1, 0.33),
  CHATQ_MODEL_LIMITS: jsonVar(
    modelLimitsSchema,
    'CHATQ_MODEL_LIMITS: expected JSON like {"gpt-4o":{"rpm":500,"tpm":200000}}',
  ),
  CHATQ_CONCURRENCY: intFrom('CHATQ_CONCURRENCY', 50, 1),
  CHATQ_PROJECT_WEIGHTS: jsonVar(
    z.record(z.string().regex(PROJECT_NAME), z.number().positive().max(1_000)),
    'CHATQ_PROJECT_WEIGHTS: expected JSON like {"alpha":2,"beta":1} (each a number above 0, at most 1000; absent: 1)',
  ),
  CHATQ_MAX_ATTEMPTS: intFrom('CHATQ_MAX_ATTEMPTS', 5, 1),
  CHATQ_TIMEOUT_MS: intFrom('CHATQ_TIMEOUT_MS', 120_000, 100, MAX_TIMER_MS),
  CHATQ_BACKOFF_MS: intFrom('CHATQ_BACKOFF_MS', 1_000, 1, 3_600_000),
  CHATQ_MAX_OUTAGE_MS: intFrom('CHATQ_MAX_OUTAGE_MS', 10 * 60_000, 0, MAX_TIMER_MS),
  CHATQ_DEFAULT_MAX_TOKENS: intFrom('CHATQ_DEFAULT_MAX_TOKENS', 1_024, 1, 1_048_576),
  CHATQ_LOCK_MS: intFrom('CHATQ_LOCK_MS', 30_000, 1_000, MAX_TIMER_MS),
  CHATQ_REDIS_WAIT_REPLICAS: intFrom('CHATQ_REDIS_WAIT_REPLICAS', 0, 0, 16),
  CHATQ_REDIS_WAIT_MS: intFrom('CHATQ_REDIS_WAIT_MS', 1_000, 1, 60_000),
  CHATQ_LANE_SLICE_MS: intFrom('CHATQ_LANE_SLICE_MS', 1_000, 0, MAX_TIMER_MS),
  CHATQ_HEAP_GROWTH_PERCENT: intFrom('CHATQ_HEAP_GROWTH_PERCENT', HEAP_GROWTH_BY_CONCURRENCY, 0, 400),
  CHATQ_RECONCILE_MS: intFrom('CHATQ_RECONCILE_MS', 15_000, 100, MAX_TIMER_MS),
  CHATQ_RESULT_TTL_S: intFrom('CHATQ_RESULT_TTL_S', 30 * 24 * 3600, 60, 10 * 365 * 24 * 3600),
  CHATQ_USERID_SECRET: z
    .string()
    .min(16, { message: 'CHATQ_USERID_SECRET: expected a secret of at least 16 characters' })
    .optional(),
  CHATQ_USERID_HOLD_DAYS: intFrom('CHATQ_USERID_HOLD_DAYS', 0, 0, 100 * 365),
  CHATQ_USAGE_DAYS: intFrom('CHATQ_USAGE_DAYS', 90, 1, 100 * 365),
  CHATQ_PRICES: z.string().min(1).optional(),
  CHATQ_UPLOAD_IDLE_MS: intFrom('CHATQ_UPLOAD_IDLE_MS', 30_000, 100, MAX_TIMER_MS),
  CHATQ_SCHEDULE_MIN_INTERVAL_MS: intFrom('CHATQ_SCHEDULE_MIN_INTERVAL_MS', 60_000, 1_000, MAX_TIMER_MS),
  CHATQ_SCHEDULE_MAX_MODELS: intFrom('CHATQ_SCHEDULE_MAX_MODELS', 20, 1, 1_000),
  CHATQ_SCHEDULES_PER_PROJECT: intFrom('CHATQ_SCHEDULES_PER_PROJECT', 100, 1, 100_000),
  CHATQ_API_TOKENS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const tokens: ApiToken[] = [];
      for (const entry of (v ?? '')
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean)) {
        const colon = entry.indexOf(':');
        const project = colon === -1 ? DEFAULT_PROJECT : entry.slice(0, colon);
        const token = colon === -1 ? entry : entry.slice(colon + 1);
        if (!PROJECT_NAME.test(project) || token === '') {
          ctx.addIssue({
            code: 'custom',
            message:
              'CHATQ_API_TOKENS: expected comma-separated tokens, each "token" or "project:token" (project: 1-64 letters, digits, _ . -)',
          });
          return z.NEVER;
        }
        tokens.push({ project, token });
      }
      return tokens;
    }),
  CHATQ_ADMIN_TOKENS: z
    .string()
    .optional()
    .transform((v) =>
      v
        ? v
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean)
        : [],
    ),
  CHATQ_WEBHOOK_URL: httpUrl.optional(),
  CHATQ_WEBHOOK_SECRET: webhookSecret.optional(),
  CHATQ_WEBHOOKS: jsonVar(
    z.record(z.string().regex(PROJECT_NAME), webhookEndpoint),
    'CHATQ_WEBHOOKS: expected JSON like {"alpha":{"url":"https://...","secret":"whsec_..."}}',
  ),
  CHATQ_TRUST_PROXY: z
    .string()
    .optional()
    .transform((v, ctx): boolean | string[] => {
      if (!v || v === '0' || v === 'false') return false;
      if (v === '1' || v === 'true') return true;
      const hops = v
        .split(',')
        .map((h) => h.trim())
        .filter(Boolean);
      if (hops.every((h) => /^[0-9a-fA-F.:/]+$/.test(h))) return hops;
      ctx.addIssue({
        code: 'custom',
        message:
          "CHATQ_TRUST_PROXY: expected 1 (trust any proxy), or the proxies' addresses or CIDR ranges, comma-separated (such as 10.0.0.0/8,127.0.0.1)",
      });
      return z.NEVER;
    }),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.output<typeof envSchema>;
