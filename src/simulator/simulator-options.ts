import { z } from 'zod';

const rate = z.number().min(0).max(1);

/** Everything about the simulated endpoint that a test, a benchmark or `chatq simulator` can set (also at run time). */
export const simulatorOptionsSchema = z
  .object({
    /** Base latency and uniform jitter (+/-) of each answer, in ms. */
    latencyMs: z.number().min(0).default(0),
    jitterMs: z.number().min(0).default(0),
    /** More latency for a judge's answers (grading calls). */
    judgeLatencyMs: z.number().min(0).default(0),
    /** The endpoint's own limits over a sliding window; 0 = none. */
    rpm: z.number().int().min(0).default(0),
    tpm: z.number().int().min(0).default(0),
    windowMs: z.number().int().min(100).default(60_000),
    /** When set, any other bearer key gets 401. */
    apiKey: z.string().optional(),
    /** Fault injection, as a fraction of calls each. */
    faults: z
      .object({
        error5xx: rate.default(0),
        rateLimit429: rate.default(0),
        timeout: rate.default(0),
        drop: rate.default(0),
        malformed: rate.default(0),
        retryAfterMs: z.number().int().min(0).default(200),
      })
      .default({ error5xx: 0, rateLimit429: 0, timeout: 0, drop: 0, malformed: 0, retryAfterMs: 200 }),
    /** How an injected timeout ends: the connection is held this long, then closed. */
    timeoutHoldMs: z.number().int().min(0).default(30_000),
    /** "down": every call's connection is dropped at once (an outage). */
    down: z.boolean().default(false),
    /** Keep the messages of every call (tests of history), not just the arrival order. */
    recordMessages: z.boolean().default(false),
  })
  .strict();

export type SimulatorOptions = z.output<typeof simulatorOptionsSchema>;
export type SimulatorOptionsInput = z.input<typeof simulatorOptionsSchema>;
