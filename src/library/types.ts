import type { z } from 'zod';
import type { batchLineSchema, chatLineSchema, scriptLineSchema } from '../producer/line-schemas.js';
import type { FinishedStatus } from '../shared/request-record.js';
import type { BatchRecord } from '../shared/batch-record.js';

/** A line of OpenAI's Batch API input: {custom_id, method: "POST", url: "/v1/chat/completions", body}. */
export type BatchLine = z.input<typeof batchLineSchema>;
/** A plain chat line: {custom_id?, user?|userid?, model, messages, ...body fields}. */
export type ChatLine = z.input<typeof chatLineSchema>;
/** A multi-turn script: {script_id?, user?|userid?, model, system?, turns, history?, turn_gap_ms?}. */
export type ScriptLine = z.input<typeof scriptLineSchema>;
/** Any of the three line formats. */
export type ChatqLine = BatchLine | ChatLine | ScriptLine;

/** What a batch is made of: lines (an array or an (async) iterable), or the path of a JSONL file. */
export type ChatqInput = string | Iterable<ChatqLine> | AsyncIterable<ChatqLine>;

export type { BatchRecord, BatchStatus } from '../shared/batch-record.js';
export type { FinishedStatus, StoredRequest } from '../shared/request-record.js';

/** Where chatq's Redis is; anything not given comes from the environment (REDIS_URL, CHATQ_PREFIX...), as the CLI's. */
export interface ChatqOptions {
  redisUrl?: string;
  /** The key prefix, a hash tag such as "{chatq}" (CHATQ_PREFIX). */
  prefix?: string;
  /** Hash tags users are spread over on a Redis Cluster (CHATQ_SHARDS). */
  shards?: number;
  redisCluster?: boolean;
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Any other CHATQ_* setting, by its variable's name. */
  env?: Record<string, string>;
}

/** A worker pool's upstream and limits (CHATQ_API_KEY, CHATQ_BASE_URL, CHATQ_CONCURRENCY, CHATQ_RPM, CHATQ_TPM). */
export interface WorkerOptions {
  apiKey?: string;
  baseUrl?: string;
  concurrency?: number;
  rpm?: number;
  tpm?: number;
}

/** How lines that name no model or user are read. */
export interface LineDefaults {
  model?: string;
  user?: string;
  /** Mixed into derived userids: another salt, fresh users (fresh memory). */
  userSalt?: string;
}

export interface SubmitOptions extends LineDefaults {
  name?: string;
  project?: string;
  metadata?: Record<string, string>;
  /** Cancel the rest of the batch once it has cost this much. */
  maxCostUsd?: number;
  /** "24h", "90m": past it, what is not done ends "expired". */
  completionWindow?: string;
  /** Any bad line rejects the whole input (a BadLineError) and nothing is sent. */
  strict?: boolean;
}

export interface Submitted {
  id: string;
  status: string;
  /** Requests enqueued (a script line is one per turn). */
  requests: number;
  /** The first bad lines (each with its source, line, field and reason); `rejectedLines` counts them all. */
  badLines: import('./errors.js').BadLineError[];
  rejectedLines: number;
}

export interface RetryOptions {
  /** Which of its requests go again (default: failed, cancelled, expired, skipped). */
  statuses?: FinishedStatus[];
  /** Only those that failed with this error code. */
  code?: string;
  completionWindow?: string;
}

export interface WaitOptions {
  signal?: AbortSignal;
  pollMs?: number;
  /** Called with the batch each time it is looked at. */
  onProgress?: (batch: BatchRecord) => void;
}

export interface ReportQuery {
  by?: 'batch' | 'user' | 'model' | 'day' | 'month';
  /** Only this batch's requests. */
  batch?: string;
  /** Inclusive UTC days, YYYY-MM-DD. */
  from?: string;
  to?: string;
  project?: string;
}

export interface EstimateOptions extends LineDefaults {
  concurrency?: number;
  latencyMs?: number;
}

/** The events a Chatq emits: a batch that `wait` saw end, by how it ended. */
export interface BatchEvents {
  'batch.completed': [BatchRecord];
  'batch.failed': [BatchRecord];
  'batch.cancelled': [BatchRecord];
  'batch.expired': [BatchRecord];
}
