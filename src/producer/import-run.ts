import { benchmarkOf, type Expect } from '../shared/expectations.js';
import type { Span } from '@opentelemetry/api';
import { encodeBody } from '../shared/body-codec.js';
import { groupBy } from '../shared/group-by.js';
import { shardOfUser } from '../shared/shard-ids.js';
import type { RequestDraft } from '../shared/request-record.js';
import { IMPORT_LEASE_MS, type ImportLeases, type ImportTarget } from './import-leases.js';
import { ImportTrace } from './import-trace.js';
import { type EnqueuedRequest, enqueueScript, extraFields } from './enqueue-script.js';
import type { LineError, ParsedLine } from './parse-input.js';
import type { ProducerContext } from './producer-context.js';

/** Requests (and body bytes) per enqueue script call, and calls in flight at once (one connection keeps them in order). */
const CHUNK_REQUESTS = 1_000;
const CHUNK_BYTES = 512 * 1024;
const CHUNKS_IN_FLIGHT = 4;
/**
 * Lines an import parses in one turn when the process's imports take turns, and the longest it holds one: a turn of
 * large items (a memory benchmark's, each parsed whole) ends by time before it ends by count.
 */
const PARSE_SLICE = 500;
const PARSE_SLICE_MS = 20;
/** Line errors kept in Redis and in memory per batch; the count goes on past it. */
export const MAX_KEPT_ERRORS = 1_000;

interface PendingLine {
  line: number;
  drafts: RequestDraft[];
  bodies: string[];
  /** The seq of its first request (a line's requests take consecutive ones, in input order). */
  firstSeq: number;
  /** Its requests' import spans (tracing on). */
  spans?: Span[];
}

/** What an import did with its lines. */
export interface ImportCounts {
  acceptedRequests: number;
  acceptedLines: number;
  rejectedLines: number;
  /** Lines an earlier import of the batch already holds (a resumed import skips them). */
  alreadyPresent: number;
}

/**
 * One import's lines on their way into Redis: parsed lines gather into chunks (CHUNK_REQUESTS or CHUNK_BYTES), each
 * chunk goes to its targets' enqueue scripts (a sharded batch: each part gets the lines of its users), up to
 * CHUNKS_IN_FLIGHT at once; bad and duplicate lines are counted and their errors kept. The first chunk that fails
 * stops the import (`add` and `end` throw it).
 */
export class ImportRun {
  readonly counts: ImportCounts = { acceptedRequests: 0, acceptedLines: 0, rejectedLines: 0, alreadyPresent: 0 };
  /** The first MAX_KEPT_ERRORS line errors, in the order they were found. */
  readonly errors: LineError[] = [];
  private readonly sharded: boolean;
  private readonly earlierSeq: number;
  private seq: number;
  /** A sharded batch's custom_ids seen in this import (each part's script sees its own only). */
  private readonly seenCustomIds = new Set<string>();
  private pending: PendingLine[] = [];
  private pendingRequests = 0;
  private pendingBytes = 0;
  private unsavedErrors: string[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private readonly trace: ImportTrace | undefined;
  /** A cancel was asked while importing: the enqueue script wrote nothing more, and the import reads no further. */
  private cancelAsked = false;
  /** The parse turn this import holds (importTurns), the lines parsed in it, and since when it is held. */
  private parseTurn: (() => void) | undefined;
  private parsedInTurn = 0;
  private turnSince = 0;
  private benchmarkMarked = false;

  private readonly project: string;
  private readonly targets: ImportTarget[];

  constructor(
    private readonly ctx: ProducerContext,
    private readonly batchId: string,
    leases: ImportLeases,
    private readonly source: string,
  ) {
    this.project = leases.project;
    this.targets = leases.targets;
    this.sharded = leases.sharded;
    this.earlierSeq = Math.max(...leases.targets.map((t) => t.lease.earlierSeq));
    this.seq = this.earlierSeq;
    this.trace = ImportTrace.start(batchId, this.project, source);
  }

  /**
   * Imports every parsed line, in order, and waits until all are written; throws the first failure. A cancel asked
   * meanwhile stops the reading: the rest of the input is not read (endImport ends the batch cancelled).
   */
  async importAll(lines: AsyncIterable<ParsedLine>): Promise<void> {
    for await (const parsed of lines) {
      await this.add(parsed);
      if (this.cancelAsked) break;
    }
    await this.end();
  }

  /** Takes one parsed line; sends a chunk when one is full, waiting while CHUNKS_IN_FLIGHT are. */
  private async add(parsed: ParsedLine): Promise<void> {
    // The process's imports parse in turns (CPU work), PARSE_SLICE lines or PARSE_SLICE_MS at a time, project by project.
    const turns = this.ctx.importTurns;
    const sliceEnded = ++this.parsedInTurn >= PARSE_SLICE || Date.now() - this.turnSince >= PARSE_SLICE_MS;
    if (turns && (this.parseTurn === undefined || sliceEnded)) {
      this.parseTurn?.();
      this.parsedInTurn = 0;
      this.parseTurn = await turns.parse.turn(this.project);
      this.turnSince = Date.now();
    }
    if (!parsed.ok) {
      this.reject(parsed.error);
      return;
    }
    await this.markBenchmark(parsed.drafts);
    const bodies = parsed.drafts.map((d) => encodeBody(JSON.stringify(d.body)));
    const spans = this.trace?.lineSpans(parsed.drafts, parsed.line);
    const pendingLine = { line: parsed.line, drafts: parsed.drafts, bodies, firstSeq: this.seq + 1, spans };
    if (this.sharded) {
      if (parsed.drafts.some((d) => this.seenCustomIds.has(d.customId))) {
        this.refused(pendingLine, 'duplicate');
        return;
      }
      for (const d of parsed.drafts) this.seenCustomIds.add(d.customId);
    }
    this.seq += parsed.drafts.length;
    this.pending.push(pendingLine);
    this.pendingRequests += parsed.drafts.length;
    this.pendingBytes += bodies.reduce((a, b) => a + b.length, 0);
    if (this.pendingRequests >= CHUNK_REQUESTS || this.pendingBytes >= CHUNK_BYTES) {
      this.track(this.flush());
      if (this.inFlight.size >= CHUNKS_IN_FLIGHT) await Promise.race(this.inFlight);
      this.throwIfFailed();
    }
  }

  /** A memory benchmark's first question marks the batch a run of that benchmark (its report's shape). */
  private async markBenchmark(drafts: RequestDraft[]): Promise<void> {
    if (this.benchmarkMarked) return;
    const benchmark = benchmarkOf((drafts.at(-1)?.expect ?? null) as Expect | null);
    if (!benchmark) return;
    this.benchmarkMarked = true;
    await this.ctx.redis.hset(this.ctx.keys.batch(this.batchId), 'benchmark', benchmark.name);
  }

  /** Sends what is left and waits for every chunk; throws the first failure. */
  private async end(): Promise<void> {
    this.endParseTurn();
    if (this.pending.length && !this.cancelAsked) this.track(this.flush());
    await Promise.all(this.inFlight);
    this.throwIfFailed();
    await this.saveErrors();
  }

  /** Ends the import's trace (when traced) with the batch's status, or the failure that ended it. */
  endTrace(status: string, err?: unknown): void {
    this.trace?.end(status, this.counts, err);
  }

  private endParseTurn(): void {
    this.parseTurn?.();
    this.parseTurn = undefined;
  }

  /** Waits for the chunks in flight, whatever their outcome (after a failure). */
  async settle(): Promise<void> {
    this.endParseTurn();
    await Promise.allSettled(this.inFlight);
  }

  private reject(error: LineError): void {
    this.counts.rejectedLines += 1;
    if (this.errors.length < MAX_KEPT_ERRORS) {
      this.errors.push(error);
      this.unsavedErrors.push(JSON.stringify(error));
    }
  }

  /** A line the enqueue script refused: a duplicate custom_id, or a userid another project holds. */
  private refused({ line, drafts, spans }: PendingLine, why: 'duplicate' | 'foreign_userid'): void {
    ImportTrace.ended(spans, why, []);
    this.reject(
      why === 'duplicate'
        ? {
            source: this.source,
            line,
            field: 'custom_id',
            message: `duplicate custom_id "${drafts[0]!.customId}" in this batch; custom_id must be unique`,
          }
        : {
            source: this.source,
            line,
            field: 'userid',
            message: `userid ${drafts[0]!.userid} is not available to this project: the endpoint keeps one memory per userid, so a userid stays with the project that first sent it. Use another userid, or "user" (chatq derives this project's userids from it)`,
          },
    );
  }

  private async saveErrors(): Promise<void> {
    if (this.unsavedErrors.length === 0) return;
    const batch = this.unsavedErrors;
    this.unsavedErrors = [];
    await this.ctx.redis.rpush(this.ctx.keys.batchErrors(this.batchId), ...batch);
  }

  private async flush(): Promise<void> {
    const lines = this.pending;
    this.pending = [];
    this.pendingRequests = 0;
    this.pendingBytes = 0;
    const { targets } = this;
    const byTarget = groupBy(lines, (line) => targets[shardOfUser(line.drafts[0]!.userid, targets.length)]!);
    // The process's imports take turns, project by project (a process importing for several projects shares out its
    // Redis connection fairly).
    const done = (await this.ctx.importTurns?.write.turn(this.project)) ?? (() => undefined);
    try {
      const heads = (await Promise.all([...byTarget].map(([target, group]) => this.enqueue(target, group)))).flat();
      await Promise.all([this.ctx.queues.add(heads), this.saveErrors()]);
    } finally {
      done();
    }
  }

  /** A chunk that fails is recorded before it leaves the in-flight set, so its error is never lost. */
  private track(p: Promise<void>): void {
    const tracked: Promise<void> = p
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Enqueues one target's lines (a part's: the lines of its users) in one script; returns the lane heads. */
  private async enqueue(target: ImportTarget, lines: PendingLine[]): Promise<string[]> {
    const k = target.keys;
    const requests: EnqueuedRequest[] = [];
    const groupStart: number[] = [];
    for (const { drafts, bodies, firstSeq, spans } of lines) {
      groupStart.push(requests.length);
      for (const [g, d] of drafts.entries()) {
        const at = firstSeq + g;
        const extra = extraFields(d, target.id, at, g, spans?.[g]);
        requests.push({
          id: `${target.id}-${at}`,
          userid: d.userid,
          seq: at,
          line: d.line,
          group: g === 0 ? drafts.length : 0,
          custom_id: d.customId,
          model: d.model,
          body: bodies[g]!,
          ...(Object.keys(extra).length > 0 ? { extra } : {}),
        });
      }
    }
    const { heads, rejected, already, foreign, cancelled } = await enqueueScript.run(
      this.ctx.redis,
      {
        batch: k.batch(target.id),
        batch_requests: k.batchRequests(target.id),
        batch_custom_ids: k.batchCustomIds(target.id),
        lanes: k.lanes,
        importer: k.batchImporter(target.id),
      },
      {
        batch_id: target.id,
        now: Date.now(),
        prefix: k.prefix,
        earlier: this.earlierSeq,
        project: this.project,
        user_index: target.userIndex,
        owner: target.lease.owner,
        lease_ms: IMPORT_LEASE_MS,
        user_hold_s: this.ctx.userids.holdS,
        admission: await this.ctx.queues.admission.arg(true),
        requests,
      },
    );
    if (cancelled) {
      this.cancelAsked = true;
      return [];
    }
    await this.countEnqueued(target.id, lines, groupStart, {
      rejected: new Set(rejected),
      held: new Set(already),
      foreign: new Set(foreign),
    });
    return heads;
  }

  /**
   * Counts what the script did with each line: taken, a duplicate custom_id, already held (a resumed import), or
   * refused for a userid another project holds.
   */
  private async countEnqueued(
    targetId: string,
    lines: PendingLine[],
    groupStart: number[],
    fates: { rejected: Set<number>; held: Set<number>; foreign: Set<number> },
  ) {
    const { rejected, held, foreign } = fates;
    let accepted = 0;
    for (const [idx, pendingLine] of lines.entries()) {
      if (rejected.has(groupStart[idx]!)) this.refused(pendingLine, 'duplicate');
      else if (foreign.has(groupStart[idx]!)) this.refused(pendingLine, 'foreign_userid');
      else if (held.has(groupStart[idx]!)) {
        this.counts.alreadyPresent += 1;
        ImportTrace.ended(pendingLine.spans, 'already_present', []);
      } else {
        const { firstSeq, drafts, spans } = pendingLine;
        ImportTrace.ended(spans, 'enqueued', spans ? drafts.map((_, g) => `${targetId}-${firstSeq + g}`) : []);
        this.counts.acceptedLines += 1;
        this.counts.acceptedRequests += pendingLine.drafts.length;
        accepted += pendingLine.drafts.length;
      }
    }
    // A sharded batch counts what its parts hold (its total when the import ends).
    if (this.sharded && accepted > 0)
      await this.ctx.redis.hincrby(this.ctx.keys.batch(this.batchId), 'enqueued', accepted);
  }
}
