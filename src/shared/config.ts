import { z } from 'zod';

const intFrom = (name: string, dflt: number, min = 0) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return dflt;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) {
        ctx.addIssue({ code: 'custom', message: `${name}: expected an integer >= ${min}, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

const modelLimitsSchema = z.record(
  z.string(),
  z.object({ rpm: z.number().int().min(0).optional(), tpm: z.number().int().min(0).optional() }).strict(),
);

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

const envSchema = z.object({
  REDIS_URL: z.string().url({ message: 'REDIS_URL: expected a URL such as redis://127.0.0.1:6379' }).default(DEFAULT_REDIS_URL),
  CHATQ_PREFIX: z
    .string()
    .regex(/^\{[A-Za-z0-9_.-]+\}$/, { message: 'CHATQ_PREFIX: expected a hash tag such as {chatq} (letters, digits, _ . - inside braces)' })
    .default('{chatq}'),
  CHATQ_BASE_URL: z.string().url({ message: 'CHATQ_BASE_URL: expected a URL such as https://api.302.ai/v1' }).optional(),
  CHATQ_API_KEY: z.string().min(1).optional(),
  CHATQ_MODEL: z.string().min(1).optional(),
  CHATQ_RPM: intFrom('CHATQ_RPM', 0),
  CHATQ_TPM: intFrom('CHATQ_TPM', 0),
  CHATQ_MODEL_LIMITS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (!v) return {};
      try {
        return modelLimitsSchema.parse(JSON.parse(v));
      } catch {
        ctx.addIssue({ code: 'custom', message: 'CHATQ_MODEL_LIMITS: expected JSON like {"gpt-4o":{"rpm":500,"tpm":200000}}' });
        return z.NEVER;
      }
    }),
  CHATQ_CONCURRENCY: intFrom('CHATQ_CONCURRENCY', 50, 1),
  CHATQ_MAX_ATTEMPTS: intFrom('CHATQ_MAX_ATTEMPTS', 5, 1),
  CHATQ_TIMEOUT_MS: intFrom('CHATQ_TIMEOUT_MS', 120_000, 100),
  CHATQ_BACKOFF_MS: intFrom('CHATQ_BACKOFF_MS', 1_000, 0),
  CHATQ_MAX_OUTAGE_MS: intFrom('CHATQ_MAX_OUTAGE_MS', 10 * 60_000, 0),
  CHATQ_DEFAULT_MAX_TOKENS: intFrom('CHATQ_DEFAULT_MAX_TOKENS', 1_024, 1),
  CHATQ_LOCK_MS: intFrom('CHATQ_LOCK_MS', 30_000, 1_000),
  CHATQ_RECONCILE_MS: intFrom('CHATQ_RECONCILE_MS', 15_000, 100),
  CHATQ_RESULT_TTL_S: intFrom('CHATQ_RESULT_TTL_S', 30 * 24 * 3600, 60),
  CHATQ_PRICES: z.string().min(1).optional(),
  CHATQ_API_TOKENS: z
    .string()
    .optional()
    .transform((v) => (v ? v.split(',').map((t) => t.trim()).filter(Boolean) : [])),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.output<typeof envSchema>;

export interface Config {
  redisUrl: string;
  prefix: string;
  /** Upstream base URL; undefined means "no upstream configured" (the CLI then starts the simulator). */
  baseUrl: string | undefined;
  apiKey: string | undefined;
  defaultModel: string | undefined;
  rpm: number;
  tpm: number;
  modelLimits: Record<string, { rpm?: number; tpm?: number }>;
  concurrency: number;
  maxAttempts: number;
  timeoutMs: number;
  backoffMs: number;
  /** How long a request waits out an unreachable upstream before that counts as a failed attempt. */
  maxOutageMs: number;
  defaultMaxTokens: number;
  lockMs: number;
  reconcileMs: number;
  resultTtlS: number;
  pricesFile: string | undefined;
  apiTokens: string[];
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
    throw new ConfigError(parsed.error.issues.map((i) => (i.message.includes(':') ? i.message : `${i.path.join('.')}: ${i.message}`)));
  }
  const e = parsed.data;
  return {
    redisUrl: e.REDIS_URL,
    prefix: e.CHATQ_PREFIX,
    baseUrl: e.CHATQ_BASE_URL ?? (e.CHATQ_API_KEY ? DEFAULT_BASE_URL : undefined),
    apiKey: e.CHATQ_API_KEY,
    defaultModel: e.CHATQ_MODEL,
    rpm: e.CHATQ_RPM,
    tpm: e.CHATQ_TPM,
    modelLimits: e.CHATQ_MODEL_LIMITS,
    concurrency: e.CHATQ_CONCURRENCY,
    maxAttempts: e.CHATQ_MAX_ATTEMPTS,
    timeoutMs: e.CHATQ_TIMEOUT_MS,
    backoffMs: e.CHATQ_BACKOFF_MS,
    maxOutageMs: e.CHATQ_MAX_OUTAGE_MS,
    defaultMaxTokens: e.CHATQ_DEFAULT_MAX_TOKENS,
    lockMs: e.CHATQ_LOCK_MS,
    reconcileMs: e.CHATQ_RECONCILE_MS,
    resultTtlS: e.CHATQ_RESULT_TTL_S,
    pricesFile: e.CHATQ_PRICES,
    apiTokens: e.CHATQ_API_TOKENS,
    logLevel: e.LOG_LEVEL,
  };
}
