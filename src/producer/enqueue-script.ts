import type { Span } from '@opentelemetry/api';
import type { AdmissionArg } from '../shared/redis/admission.js';
import { defineScript } from '../shared/redis/script-contract.js';
import type { RequestDraft } from '../shared/request-record.js';
import { ImportTrace } from './import-trace.js';

/** One request as enqueue-requests.lua takes it. */
export interface EnqueuedRequest {
  id: string;
  userid: string;
  seq: number;
  line: number;
  /** The size of its group (the turns of one script, accepted whole or not at all) on its first, else 0. */
  group: number;
  custom_id: string;
  model: string;
  /** The chat body (JSON text, kept as it is). */
  body: string;
  /** More fields of its record (extraFields). */
  extra?: Record<string, string | number>;
}

export const enqueueScript = defineScript<
  {
    batch_id: string;
    now: number;
    /** The key prefix (the hash tag every key here shares). */
    prefix: string;
    /** The highest seq of earlier imports of this batch (a re-run adds only the custom_ids they lack; 0 for a first). */
    earlier: number;
    /** The batch's project. */
    project: string;
    /** What comes before and after the userid in the project's user request index keys. */
    user_index: [string, string];
    /** This importer's lease: its owner and length (ms). */
    owner: string;
    lease_ms: number;
    /** How long (s) a userid stays its project's after this import (0: for ever). */
    user_hold_s: number;
    /** The project's share of the queue (admission.lua). */
    admission: AdmissionArg;
    requests: EnqueuedRequest[];
  },
  { heads: string[]; rejected: number[]; already: number[]; foreign: number[]; cancelled: boolean }
>()({
  file: new URL('./enqueue-requests.lua', import.meta.url),
  keys: ['batch', 'batch_requests', 'batch_custom_ids', 'lanes', 'importer'],
  args: {
    batch_id: 'string',
    now: 'whole',
    prefix: 'string',
    earlier: 'whole',
    project: 'string',
    user_index: 'list',
    owner: 'string',
    lease_ms: 'whole',
    user_hold_s: 'whole',
    admission: 'table',
    requests: 'list',
  },
});

/** A request's fields beyond the positional ones, for the enqueue script (JSON; none for most requests). */
export function extraFields(
  d: RequestDraft,
  targetId: string,
  at: number,
  indexInLine: number,
  span: Span | undefined,
): Record<string, string | number> {
  const extra: Record<string, string | number> = {};
  const tp = ImportTrace.traceparentOf(span);
  if (tp) extra.traceparent = tp;
  if (d.onFailure === 'halt') extra.on_failure = 'halt';
  if (d.history === 'full') {
    extra.history = 'full';
    if (indexInLine > 0) extra.prev = `${targetId}-${at - 1}`;
  }
  if (d.scriptId !== undefined) extra.script_id = d.scriptId;
  if (d.turn !== undefined) extra.turn = d.turn;
  if (d.expect !== undefined) extra.expect = JSON.stringify(d.expect);
  if (d.tags?.length) extra.tags = JSON.stringify(d.tags);
  if (d.gapMs) extra.gap_ms = d.gapMs;
  return extra;
}
