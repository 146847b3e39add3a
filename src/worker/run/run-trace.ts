import { type Context, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { contextOf, startSpan, tracingOn } from '../../shared/tracing.js';
import type { StartedRequest } from '../store/request-claims.js';

/** What a finished upstream call tells its span: the reply's id, model and usage, or the error's code. */
export type CallEnd =
  | {
      ok: true;
      status: number;
      responseId?: string;
      responseModel?: string;
      inputTokens: number;
      outputTokens: number;
      finishReasons: string[];
    }
  | { ok: false; status: number | null; code: string };

/** An upstream attempt's span, ended once with what came back. */
export interface CallTrace {
  end(outcome: CallEnd): void;
}

/**
 * One run of a request in its trace (the import's span, from the record, is its parent): the wait before it (the
 * queue, or a backoff), the wait for capacity, each upstream attempt (GenAI semantic conventions: model, usage,
 * response id; never message text), the finish. A no-op while tracing is off.
 */
export interface RunTrace {
  capacityWait<T>(fn: () => Promise<T>): Promise<T>;
  /** The attempt's span; undefined while tracing is off (`call(...)?.end(...)` then works out nothing). */
  call(model: string, body: Record<string, unknown>, attempt: number): CallTrace | undefined;
  finish<T>(fn: () => Promise<T>): Promise<T>;
  end(outcome: string): void;
}

const NO_TRACE: RunTrace = {
  capacityWait: (fn) => fn(),
  call: () => undefined,
  finish: (fn) => fn(),
  end: () => undefined,
};

/** Runs `fn` inside a child span of `parent` named `name`. */
async function within<T>(name: string, parent: Context, fn: () => Promise<T>): Promise<T> {
  const span = startSpan(name, parent);
  try {
    return await fn();
  } finally {
    span.end();
  }
}

function callSpan(parent: Context, model: string, body: Record<string, unknown>, attempt: number): CallTrace {
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  const span: Span = startSpan(`chat ${model}`, parent, {
    kind: SpanKind.CLIENT,
    attributes: {
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': model,
      ...(typeof maxTokens === 'number' ? { 'gen_ai.request.max_tokens': maxTokens } : {}),
      'chatq.attempt': attempt,
    },
  });
  return {
    end(outcome) {
      if (outcome.status !== null) span.setAttribute('http.response.status_code', outcome.status);
      if (outcome.ok) {
        span.setAttributes({
          'gen_ai.usage.input_tokens': outcome.inputTokens,
          'gen_ai.usage.output_tokens': outcome.outputTokens,
          'gen_ai.response.finish_reasons': outcome.finishReasons,
          ...(outcome.responseId ? { 'gen_ai.response.id': outcome.responseId } : {}),
          ...(outcome.responseModel ? { 'gen_ai.response.model': outcome.responseModel } : {}),
        });
      } else {
        span.setAttribute('error.type', outcome.code);
        span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.code });
      }
      span.end();
    },
  };
}

/** The trace of this run of `started` (a no-op while tracing is off). */
export function traceRun(started: StartedRequest): RunTrace {
  // Not sampled where it was imported (or its import was not traced): nothing of it is traced here either.
  if (!tracingOn() || !started.traceparent) return NO_TRACE;
  const parent = contextOf(started.traceparent);
  // The wait before this run: from the import (its first run) or from when an earlier run gave it back.
  if (started.waitingSince > 0)
    startSpan(started.attempt > 1 ? 'chatq backoff' : 'chatq queue wait', parent, {
      startTime: started.waitingSince,
    }).end();
  const run = startSpan('chatq run', parent, {
    kind: SpanKind.CONSUMER,
    attributes: {
      'chatq.request.id': started.id,
      'chatq.batch.id': started.batch,
      'chatq.project': started.project,
      'chatq.attempt': started.attempt,
      'chatq.claim': started.claim,
    },
  });
  const inRun = trace.setSpan(parent, run);
  return {
    capacityWait: (fn) => within('chatq capacity wait', inRun, fn),
    call: (model, body, attempt) => callSpan(inRun, model, body, attempt),
    finish: (fn) => within('chatq finish', inRun, fn),
    end(outcome) {
      run.setAttribute('chatq.run.outcome', outcome);
      run.end();
    },
  };
}
