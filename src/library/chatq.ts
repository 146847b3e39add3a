import { benchmarkAnswers, type BenchmarkReport, benchmarkRun } from '../shared/reports/benchmark-report.js';
import { EventEmitter } from 'node:events';
import { configOf, openStore, type Open } from './chatq-store.js';
import { inputStream, lineDefaults, sourceOf, windowOf } from './chatq-input.js';
import { Readable } from 'node:stream';
import { ImportFailedError, ImportRefused, StrictInputError } from '../producer/import-errors.js';
import {
  estimateInput,
  estimateSettings,
  readEstimateHistory,
  DEFAULT_LATENCY_MS,
} from '../producer/estimate-input.js';
import { submitBatch } from '../producer/submit-batch.js';
import { toOutputLine, type OutputLine } from '../shared/batches/batch-output.js';
import { cancelBatch } from '../shared/batches/cancel-batch.js';
import { getBatch, readBatchRequests, type UsageRow } from '../shared/batches/read-store.js';
import { RETRYABLE_STATUSES, retryLines } from '../shared/batches/retry-input.js';
import type { Config } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import { compareBatches, evaluateBatch, type Comparison, type EvalSummary } from '../shared/reports/eval-report.js';
import { UsageNotFound, UsageQueryError, usageReport } from '../shared/reports/usage-report.js';
import type { StoredRequest } from '../shared/request-record.js';
import { batchEnded, type BatchRecord } from '../shared/batch-record.js';
import { ALL_PROJECTS, projectScope } from '../shared/scope.js';
import { BadLineError, BatchNotFoundError, BudgetExceededError, ChatqError, ImportStoppedError } from './errors.js';
import type {
  BatchEvents,
  ChatqInput,
  ChatqOptions,
  EstimateOptions,
  ReportQuery,
  RetryOptions,
  SubmitOptions,
  Submitted,
  WaitOptions,
  WorkerOptions,
} from './types.js';

/**
 * chatq as a library: submit conversations, wait for them, read their results and costs, and run workers, from a
 * TypeScript service. The CLI's commands are the same calls. Options default to the environment, as the CLI's do.
 */
export class Chatq extends EventEmitter<BatchEvents> {
  private readonly config: Config;
  private opened: Promise<Open> | undefined;
  private closed = false;

  constructor(private readonly options: ChatqOptions = {}) {
    super();
    this.config = configOf(options);
  }

  /** Connects on first use: a Redis that cannot be used is a RedisUnavailableError that says why; none once closed. */
  private open(): Promise<Open> {
    if (this.closed) return Promise.reject(new ChatqError('this Chatq is closed: make a new one to go on'));
    this.opened ??= openStore(this.config).catch((err: unknown) => {
      this.opened = undefined;
      throw err;
    });
    return this.opened;
  }

  /** A pool of workers in this process, calling the upstream; close it to stop (calls in flight finish first). */
  async startWorker(options: WorkerOptions = {}): Promise<{ close(): Promise<void> }> {
    const config = configOf({ ...this.options, ...options });
    if (!config.baseUrl)
      throw new ChatqError(
        'no upstream: give apiKey (CHATQ_API_KEY, 302.AI) or baseUrl (CHATQ_BASE_URL, e.g. a chatq simulator)',
      );
    const logger = createLogger(config.logLevel, 'chatq-worker');
    // Loaded here: a process that only submits and reads never loads the worker.
    const { WorkerPool } = await import('../worker/worker-pool.js');
    const pool = await WorkerPool.start({ config, baseUrl: config.baseUrl, logger });
    return { close: () => pool.close() };
  }

  /**
   * Enqueues one batch: lines as objects (the three formats: OpenAI Batch, chat, script), an (async) iterable of
   * them, or a file path. Bad lines are skipped and listed (`errors`), or with `strict` nothing is sent and the first
   * is thrown as a BadLineError.
   */
  async submit(input: ChatqInput, options: SubmitOptions = {}): Promise<Submitted> {
    const budget = options.maxCostUsd;
    if (budget !== undefined && !(Number.isFinite(budget) && budget >= 0))
      throw new ChatqError(`maxCostUsd: expected a number of US dollars, 0 or more (got ${budget})`);
    const o = await this.open();
    const window = windowOf(options.completionWindow);
    const source = sourceOf(input, options.name);
    try {
      const result = await submitBatch(o, inputStream(input), {
        source,
        strict: options.strict ?? false,
        ...(options.name ? { name: options.name } : {}),
        ...(options.project ? { project: options.project } : {}),
        ...(options.metadata ? { metadata: options.metadata } : {}),
        ...(options.maxCostUsd !== undefined ? { maxCostNano: Math.round(options.maxCostUsd * 1e9) } : {}),
        ...(window ? { completionWindow: window } : {}),
        ...lineDefaults(options, this.config.defaultModel),
      });
      return {
        id: result.batchId,
        status: result.status,
        requests: result.acceptedRequests,
        badLines: result.errors.map((e) => new BadLineError(e.source, e.line, e.field, e.message)),
        rejectedLines: result.rejectedLines,
      };
    } catch (err) {
      if (err instanceof StrictInputError) {
        const first = err.errors[0]!;
        throw new BadLineError(first.source, first.line, first.field, first.message, err.count);
      }
      if (err instanceof ImportRefused) throw new ChatqError(`${source}: ${err.message}`);
      if (err instanceof ImportFailedError) throw new ImportStoppedError(err.batchId, err.enqueued, err.message);
      throw err;
    }
  }

  /** The batch as it is now. */
  async status(batchId: string): Promise<BatchRecord> {
    const o = await this.open();
    const batch = await getBatch(o.redis, o.keys, batchId);
    if (!batch) throw new BatchNotFoundError(batchId);
    return batch;
  }

  /**
   * The batch once it has ended (completed, failed, cancelled, expired), looked at every `pollMs` (500); `signal`
   * stops the wait. Emits "batch.<status>" when it ends. A batch its budget stopped rejects with BudgetExceededError.
   */
  async wait(batchId: string, options: WaitOptions = {}): Promise<BatchRecord> {
    for (;;) {
      options.signal?.throwIfAborted();
      const batch = await this.status(batchId);
      options.onProgress?.(batch);
      if (batchEnded(batch.status)) {
        this.emit(`batch.${batch.status}` as keyof BatchEvents, batch);
        if (batch.status === 'cancelled' && (await this.cancelCode(batchId)) === 'budget_exceeded')
          throw new BudgetExceededError(batch);
        return batch;
      }
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, options.pollMs ?? 500);
        options.signal?.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            reject(options.signal!.reason);
          },
          { once: true },
        );
      });
    }
  }

  /** Why a cancelled batch was cancelled (its cancel's code: "cancelled", "budget_exceeded"...). */
  private async cancelCode(batchId: string): Promise<string | undefined> {
    const o = await this.open();
    const reason = await o.redis.hget(o.keys.batch(batchId), 'cancel_reason');
    return reason ? (JSON.parse(reason) as { code?: string }).code : undefined;
  }

  /** The batch's results as OpenAI Batch output lines (with chatq's own fields), in input order. */
  async *results(batchId: string): AsyncGenerator<OutputLine> {
    for await (const r of this.requests(batchId)) yield toOutputLine(r);
  }

  /** The batch's requests as chatq stores them (status, attempts, usage, cost, grade...), in input order. */
  async *requests(batchId: string): AsyncGenerator<StoredRequest> {
    const o = await this.open();
    await this.status(batchId);
    yield* readBatchRequests(o.redis, o.keys, batchId);
  }

  /** Cancels what of the batch has not been sent; calls in flight finish. Returns the batch afterwards. */
  async cancel(batchId: string): Promise<BatchRecord> {
    const o = await this.open();
    const status = await cancelBatch(o.redis, o.keys, o.queues, batchId, o.config.resultTtlS, {
      code: 'cancelled',
      message: 'cancelled before it was sent',
    });
    if (status === 'missing') throw new BatchNotFoundError(batchId);
    return this.status(batchId);
  }

  /** What an ended batch did not get done (failed, cancelled, expired, skipped: or `statuses`), as a new batch. */
  async retry(batchId: string, options: RetryOptions = {}): Promise<Submitted> {
    const original = await this.status(batchId);
    if (!batchEnded(original.status))
      throw new ChatqError(`batch ${batchId} is ${original.status}: retry it once it has ended`);
    const o = await this.open();
    const window = windowOf(options.completionWindow);
    const sel = {
      batchId,
      statuses: options.statuses ?? [...RETRYABLE_STATUSES],
      ...(options.code ? { code: options.code } : {}),
    };
    const result = await submitBatch(o, () => Readable.from(retryLines(o.redis, o.keys, sel)), {
      source: `retry of ${batchId}`,
      name: `${original.name} (retry)`,
      metadata: { ...original.metadata, retry_of: batchId },
      project: original.project,
      ...(window ? { completionWindow: window } : {}),
    });
    return {
      id: result.batchId,
      status: result.status,
      requests: result.acceptedRequests,
      badLines: [],
      rejectedLines: 0,
    };
  }

  /** Requests, tokens, cost and repeat spend by batch, user, model, day or month (`chatq report`, GET /v1/usage). */
  async report(query: ReportQuery = {}): Promise<UsageRow[]> {
    const o = await this.open();
    const scope = query.project ? projectScope(query.project) : ALL_PROJECTS;
    try {
      return await usageReport(o.redis, o.keys, scope, { ...query, by: query.by ?? 'batch' });
    } catch (err) {
      if (err instanceof UsageNotFound) throw new BatchNotFoundError(query.batch ?? '');
      if (err instanceof UsageQueryError) throw new ChatqError(err.message);
      throw err;
    }
  }

  /** An evaluation batch's grades: passed, failed and their rate, with the failures (`chatq eval`). */
  async evaluation(batchId: string): Promise<EvalSummary> {
    const o = await this.open();
    return evaluateBatch(o.redis, o.keys, await this.status(batchId));
  }

  /**
   * A memory benchmark run's figures in its paper's shape (LongMemEval: accuracy by type, task-averaged, overall,
   * abstention; LoCoMo: F1, BLEU-1 and J by category, overall), or undefined when the batch is not one.
   */
  async benchmarkReport(batchId: string): Promise<BenchmarkReport | undefined> {
    const o = await this.open();
    return (await benchmarkRun(o.redis, o.keys, await this.status(batchId), o.resultTtlS))?.report;
  }

  /**
   * A memory benchmark run's answers in the file its official scorer reads (LongMemEval's evaluate_qa.py output
   * lines, LoCoMo's evaluate_qa.py output file), as text chunks.
   */
  async *benchmarkAnswers(batchId: string): AsyncGenerator<string> {
    yield* benchmarkAnswers(this.requests(batchId));
  }

  /** Two runs of a suite side by side: per custom_id what regressed and what was fixed, and the change in cost. */
  async compare(batchA: string, batchB: string): Promise<Comparison> {
    const o = await this.open();
    await Promise.all([this.status(batchA), this.status(batchB)]);
    return compareBatches(o.redis, o.keys, batchA, batchB);
  }

  /** Requests, tokens, cost range and time of an input under the configured limits, before anything is sent. */
  async estimate(input: ChatqInput, options: EstimateOptions = {}) {
    const o = await this.open();
    const history = await readEstimateHistory(o.redis, o.keys, ALL_PROJECTS);
    const settings = estimateSettings(o.config, {
      concurrency: options.concurrency ?? o.config.concurrency,
      latencyMs: options.latencyMs ?? history.latencyMs ?? DEFAULT_LATENCY_MS,
      prices: o.prices,
      history,
    });
    const badLines: BadLineError[] = [];
    const { estimate } = await estimateInput(
      inputStream(input),
      { source: sourceOf(input, undefined), ...lineDefaults(options, this.config.defaultModel) },
      settings,
      (e) => badLines.push(new BadLineError(e.source, e.line, e.field, e.message)),
    );
    return { ...estimate, badLines };
  }

  /** Closes the connections (workers started here are closed with their own `close`); later calls are refused. */
  async close(): Promise<void> {
    this.closed = true;
    const opened = this.opened;
    this.opened = undefined;
    if (!opened) return;
    const o = await opened.catch(() => undefined);
    if (!o) return;
    await o.queues.close();
    o.redis.disconnect();
  }
}
