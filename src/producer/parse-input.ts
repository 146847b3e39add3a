import type { Readable } from 'node:stream';
import { type InputRecord, readInputRecords } from '../shared/input-records.js';
import { type BenchmarkContext, type BenchmarkFormat, benchmarkDrafts, benchmarkFormat } from './benchmark-input.js';
import type { Grader } from '../shared/graders/judges.js';
import { parseJsonLine, type RecordKind } from '../shared/input-limits.js';
import type { HistoryMode, OnFailure, RequestDraft } from '../shared/request-record.js';
import type { Expect, Expectation } from '../shared/expectations.js';
import { isUuidV4, throwawayUserids, type UseridDerivation } from '../shared/userid.js';
import { batchLineSchema, chatLineSchema, CHATQ_FIELDS, scriptLineSchema } from './line-schemas.js';
import { check, LineProblem } from './line-problems.js';

export interface LineError {
  source: string;
  /** The line's number, or the item's (of a JSON array). */
  line: number;
  /** Set when the input is a JSON array: `line` numbers its items. */
  item?: true;
  field?: string;
  message: string;
}

export type ParsedLine = { ok: true; line: number; drafts: RequestDraft[] } | { ok: false; error: LineError };

export interface ParseOptions {
  /** File name (or "upload", "stdin") used in error messages. */
  source: string;
  defaultModel?: string;
  /** Sends every line to this model, whatever the line says (a suite run against several models). */
  forceModel?: string;
  /** Used for lines with neither "userid" nor "user". */
  defaultUser?: string;
  /** Mixed into derived userids: a different salt gives a fresh set of users (fresh memory). */
  userSalt?: string;
  /**
   * How "user" strings become userids: the batch's project's derivation (userid-scheme.ts), which an import sets; by
   * default one keyed with a secret of this process alone (an estimate or a check, whose userids are never sent).
   */
  userids?: UseridDerivation;
  /** turn_gap_ms for lines that set none. */
  turnGapMs?: number;
  /** The most tokens a reply of this model may take, when known (the price map's max_output): a larger bound is a bad line. */
  outputLimit?: (model: string) => number | undefined;
  /** The judge model of judge expectations that name none (--judge-model). */
  judgeModel?: string;
  /** A prompt template for every judge expectation of the input (--judge-prompt). */
  judgePrompt?: string;
  /** Mixed into a memory benchmark's userids when there is no userSalt: each run (batch) gets fresh users. */
  runSalt?: string;
  /**
   * A memory benchmark's subset: its first `limit` instances (samples) of the `types` asked for (tags); the judge that
   * grades its questions (--grader: by default the benchmark's published one; none: no judge); LoCoMo's category 5
   * judged too (--judge-adversarial).
   */
  benchmark?: { limit?: number; types?: string[]; grader?: Grader | 'none'; judgeAdversarial?: boolean };
}

/** What a request is graded by and reported under: its expectations (with the run's judge options) and its tags. */
function gradedBy(expect: Expect | undefined, tags: string[] | undefined, opts: ParseOptions): Partial<RequestDraft> {
  const withJudge = (e: Expectation): Expectation =>
    e.judge
      ? {
          ...e,
          judge: {
            ...e.judge,
            ...(e.judge.model === undefined && opts.judgeModel ? { model: opts.judgeModel } : {}),
            ...(opts.judgePrompt !== undefined ? { prompt: opts.judgePrompt } : {}),
          },
        }
      : e;
  return {
    ...(expect !== undefined ? { expect: Array.isArray(expect) ? expect.map(withJudge) : withJudge(expect) } : {}),
    ...(tags?.length ? { tags } : {}),
  };
}

export function formatLineError(e: LineError): string {
  return `${e.source}:${e.item ? ` item ${e.line}:` : `${e.line}:`} ${e.field ? `field "${e.field}": ` : ''}${e.message}`;
}

function resolveUserid(fields: { userid?: string; user?: string }, opts: ParseOptions, at: string): string {
  if (fields.userid !== undefined) {
    // A salt gives a fresh set of users: even explicit userids map to new ones.
    if (isUuidV4(fields.userid))
      return opts.userSalt ? derivedUserid(fields.userid.toLowerCase(), opts) : fields.userid.toLowerCase();
    throw new LineProblem(
      `${at}userid`,
      `"${fields.userid.slice(0, 60)}" is not a UUID v4, and the endpoint silently ignores such userids (no memory). Use a UUID v4, or put any string in "user" and chatq derives a stable UUID v4 from it`,
    );
  }
  const user = fields.user ?? opts.defaultUser;
  if (user !== undefined) return derivedUserid(user, opts);
  throw new LineProblem(
    `${at}userid`,
    'missing: add "userid" (a UUID v4) or "user" (any string) to the line, or pass --user',
  );
}

type ReplyBudget = { max_tokens?: number | undefined; max_completion_tokens?: number | undefined };

/** The line's model; its reply budget (max_tokens, max_completion_tokens) within that model's known output limit. */
function resolveModel(fields: { model?: string | undefined } & ReplyBudget, opts: ParseOptions, at: string): string {
  const m = opts.forceModel ?? fields.model ?? opts.defaultModel;
  if (!m) throw new LineProblem(`${at}model`, 'missing: add "model" to the line, or pass --model (or set CHATQ_MODEL)');
  const most = opts.outputLimit?.(m);
  for (const field of ['max_tokens', 'max_completion_tokens'] as const) {
    const asked = fields[field];
    if (most !== undefined && asked !== undefined && asked > most) {
      throw new LineProblem(
        `${at}${field}`,
        `${asked} is over ${m}'s output limit of ${most} tokens (max_output in the price map): lower it, or leave it out`,
      );
    }
  }
  return m;
}

/** The chat body: the line's fields less chatq's own, with the resolved model (one copy). */
function chatBody(obj: Record<string, unknown>, model: string): Record<string, unknown> {
  const body: Record<string, unknown> = { ...obj, model };
  for (const f of CHATQ_FIELDS) delete body[f];
  return body;
}

/** Derived userids, remembered per derivation: input files repeat their users. */
const derived = new WeakMap<UseridDerivation, Map<string, string>>();
function derivedUserid(user: string, { userSalt = '', userids = throwawayUserids }: ParseOptions): string {
  let seen = derived.get(userids);
  if (!seen) derived.set(userids, (seen = new Map()));
  const key = `${userSalt}\0${user}`;
  let id = seen.get(key);
  if (id === undefined) {
    if (seen.size >= 100_000) seen.clear();
    id = userids(user, userSalt);
    seen.set(key, id);
  }
  return id;
}

const gapOf = (ms: number | undefined) => (ms ? { gapMs: ms } : {});

/** A memory benchmark item's calls (benchmark-input.ts). */
function itemDrafts(format: BenchmarkFormat, obj: Record<string, unknown>, line: number, opts: ParseOptions) {
  const context: BenchmarkContext = {
    check: (schema, value, field) => check(schema, value, field),
    fail: (field, message) => {
      throw new LineProblem(field, message);
    },
    userid: (user) => derivedUserid(user, { ...opts, userSalt: opts.userSalt ?? opts.runSalt ?? '' }),
    model: resolveModel({}, opts, ''),
    line,
    types: opts.benchmark?.types ?? [],
    gapMs: opts.turnGapMs,
    judge: { model: opts.judgeModel, prompt: opts.judgePrompt, grader: opts.benchmark?.grader },
    judgeAdversarial: opts.benchmark?.judgeAdversarial ?? false,
  };
  return benchmarkDrafts(format, obj, context);
}

function draftsOf(obj: Record<string, unknown>, line: number, opts: ParseOptions): RequestDraft[] {
  const benchmark = benchmarkFormat(obj);
  if (benchmark) return itemDrafts(benchmark, obj, line, opts);
  if ('turns' in obj) return scriptDrafts(obj, line, opts);
  if ('body' in obj || 'method' in obj || 'url' in obj) {
    const b = check(batchLineSchema, obj);
    return oneDraft(b, b.body as Record<string, unknown>, 'body.', line, opts);
  }
  if (!('messages' in obj)) {
    throw new LineProblem(
      undefined,
      'not a chatq line: expected "messages" (chat line), "turns" (conversation script) or "body" (OpenAI Batch line)',
    );
  }
  const c = check(chatLineSchema, obj);
  return oneDraft(c, c, '', line, opts);
}

/**
 * The one request of a chat line or an OpenAI Batch line: chatq's fields from the line (`fields`), the chat fields from
 * `body` (the line itself, or a Batch line's body; `at` names where, in errors).
 */
function oneDraft(
  fields: {
    custom_id?: string | undefined;
    on_failure?: OnFailure | undefined;
    expect?: Expect | undefined;
    tags?: string[] | undefined;
  },
  body: Record<string, unknown> & Parameters<typeof resolveUserid>[0] & Parameters<typeof resolveModel>[0],
  at: string,
  line: number,
  opts: ParseOptions,
): RequestDraft[] {
  const model = resolveModel(body, opts, at);
  return [
    {
      customId: fields.custom_id ?? `line-${line}`,
      userid: resolveUserid(body, opts, at),
      model,
      body: chatBody(body, model),
      line,
      onFailure: fields.on_failure ?? 'continue',
      history: 'memory',
      ...gradedBy(fields.expect, fields.tags, opts),
      ...gapOf(opts.turnGapMs),
    },
  ];
}

function scriptDrafts(obj: Record<string, unknown>, line: number, opts: ParseOptions): RequestDraft[] {
  const s = check(scriptLineSchema, obj);
  const userid = resolveUserid(s, opts, '');
  const model = resolveModel(s, opts, '');
  const history: HistoryMode = s.history;
  const onFailure: OnFailure = s.on_failure ?? (history === 'full' ? 'halt' : 'continue');
  const scriptId = s.script_id ?? `script-line-${line}`;
  const params = chatBody(s, model);
  return s.turns.map((t, turn) => {
    const content = typeof t === 'string' ? t : t.content;
    const system =
      s.system !== undefined && (history === 'memory' || turn === 0) ? [{ role: 'system', content: s.system }] : [];
    return {
      customId: `${scriptId}-turn-${turn + 1}`,
      userid,
      model,
      body: { ...params, messages: [...system, { role: 'user', content }] },
      line,
      onFailure,
      history,
      turn,
      scriptId,
      ...(typeof t === 'string'
        ? gradedBy(undefined, s.tags, opts)
        : gradedBy(t.expect, [...(s.tags ?? []), ...(t.tags ?? [])], opts)),
      ...gapOf(s.turn_gap_ms ?? opts.turnGapMs),
    };
  });
}

/** A record's error: where it is (the line, or the item of a JSON array), the field when known, and why. */
const recordError = (opts: ParseOptions, line: number, kind: RecordKind, message: string, field?: string) => ({
  ok: false as const,
  error: {
    source: opts.source,
    line,
    ...(kind === 'item' ? { item: true as const } : {}),
    ...(field ? { field } : {}),
    message,
  },
});

/**
 * Parses one input record as read (readInputRecords: a line, or an item of a JSON array); never throws: a bad one,
 * or one the reader refused, comes back as an error naming where it is and the field. Null for a blank line.
 */
export function parseRecord(r: InputRecord, opts: ParseOptions): ParsedLine | null {
  return 'refused' in r ? recordError(opts, r.line, r.kind, r.refused) : parseLine(r.text, r.line, opts, r.kind);
}

/** Parses one input record's text (1-based `line`); see parseRecord. */
export function parseLine(
  text: string,
  line: number,
  opts: ParseOptions,
  kind: RecordKind = 'line',
): ParsedLine | null {
  if (text.trim() === '') return null;
  const json = parseJsonLine(text, kind);
  if (!json.ok) return recordError(opts, line, kind, json.message);
  try {
    return { ok: true, line, drafts: draftsOf(json.value, line, opts) };
  } catch (err) {
    if (!(err instanceof LineProblem)) throw err;
    return recordError(opts, line, kind, err.message, err.field);
  }
}

/**
 * Streams an input, one parsed line (or item of a JSON array: a memory benchmark) at a time; the file is never read
 * whole, nor a line past its bound. A benchmark's subset (--types) leaves out the items with no call asked for, and
 * its --limit ends the input after that many items with calls.
 */
export async function* parseInput(input: Readable, opts: ParseOptions): AsyncGenerator<ParsedLine> {
  let items = 0;
  const limit = opts.benchmark?.limit ?? Infinity;
  for await (const l of readInputRecords(input)) {
    if (items >= limit) return;
    const parsed = parseRecord(l, opts);
    if (parsed && (!parsed.ok || parsed.drafts.length > 0)) {
      if (parsed.ok) items += 1;
      yield parsed;
    }
  }
}
