import { ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { RequestDraft } from '../shared/request-record.js';
import { linkTo, startSpan, tracingOn, traceparent } from '../shared/tracing.js';

/**
 * An import's spans: the batch's own (its trace links each request's), and for each request a trace of its own, rooted
 * at the span of the line that brought it (read to enqueued); its traceparent goes into the request's record, where
 * the worker takes the trace up. No message text goes into a span.
 */
export class ImportTrace {
  private constructor(private readonly batch: Span) {}

  /** The import's trace, or undefined while tracing is off. */
  static start(batchId: string, project: string, source: string): ImportTrace | undefined {
    if (!tracingOn()) return undefined;
    return new ImportTrace(
      startSpan('chatq batch', ROOT_CONTEXT, {
        kind: SpanKind.PRODUCER,
        attributes: { 'chatq.batch.id': batchId, 'chatq.project': project, 'chatq.input.source': source },
      }),
    );
  }

  /** A root span per request of a line, as it is read; the batch's span links the sampled ones. */
  lineSpans(drafts: RequestDraft[], line: number): Span[] {
    return drafts.map((d) => {
      const span = startSpan('chatq import', ROOT_CONTEXT, {
        kind: SpanKind.PRODUCER,
        root: true,
        links: linkTo(this.batch, { 'chatq.link': 'batch' }),
        attributes: {
          'chatq.custom_id': d.customId,
          'chatq.input.line': line,
          'gen_ai.request.model': d.model,
        },
      });
      for (const link of linkTo(span)) this.batch.addLink(link);
      return span;
    });
  }

  /**
   * The record's traceparent for a request's span; none when it is not sampled (nor traced: the worker then traces
   * nothing of it, and the record is no larger).
   */
  static traceparentOf(span: Span | undefined): string | undefined {
    return span && traceparent(span);
  }

  /** Ends a line's spans once its chunk is written: enqueued (with its request ids), or why not. */
  static ended(
    spans: Span[] | undefined,
    outcome: 'enqueued' | 'duplicate' | 'already_present' | 'foreign_userid',
    ids: string[],
  ): void {
    for (const [i, span] of (spans ?? []).entries()) {
      span.setAttribute('chatq.import.outcome', outcome);
      if (ids[i]) span.setAttribute('chatq.request.id', ids[i]);
      if (outcome === 'duplicate') span.setStatus({ code: SpanStatusCode.ERROR, message: 'duplicate custom_id' });
      span.end();
    }
  }

  /** Ends the batch's span with the import's outcome. */
  end(status: string, counts: { acceptedRequests: number; rejectedLines: number }, err?: unknown): void {
    this.batch.setAttributes({
      'chatq.batch.status': status,
      'chatq.batch.requests': counts.acceptedRequests,
      'chatq.batch.rejected_lines': counts.rejectedLines,
    });
    if (err !== undefined)
      this.batch.setStatus({
        code: SpanStatusCode.ERROR,
        message: err instanceof Error ? err.message.slice(0, 200) : 'import failed',
      });
    this.batch.end();
  }
}
