import {
  type Attributes,
  type Context,
  diag,
  DiagLogLevel,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  type SpanOptions,
  trace,
  TraceFlags,
} from '@opentelemetry/api';
import { z } from 'zod';
import { createLogger } from './logger.js';

/**
 * OpenTelemetry traces, off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: then
 * spans go over OTLP/HTTP, sampled as OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG say, from a service named by
 * OTEL_SERVICE_NAME (default "chatq"). Off, nothing is loaded and no span is made: callers ask `tracingOn()` first.
 * A request's trace crosses processes in its record: the W3C traceparent of its import span (`traceparent()`). The
 * importer's sampling decides: a worker traces only the requests whose import span was sampled.
 */

const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

const tracingEnvSchema = z.object({
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.string().url().optional(),
  OTEL_SDK_DISABLED: z.enum(['true', 'false']).optional(),
  OTEL_TRACES_EXPORTER: z.enum(['otlp', 'none']).optional(),
  OTEL_SERVICE_NAME: z.string().min(1).max(200).optional(),
  OTEL_TRACES_SAMPLER: z.enum(SAMPLERS).default('parentbased_always_on'),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).default(1),
});

/** A tracing variable that does not parse: said where and what, like the rest of the configuration. */
export class TracingConfigError extends Error {}

let provider: { forceFlush(): Promise<void>; shutdown(): Promise<void> } | undefined;
/** Says (once a minute at most) that spans could not be sent, and why. */
let exportFailed: ((reason: string) => void) | undefined;

export const tracingOn = (): boolean => provider !== undefined;

/** The tracer every chatq span comes from (a no-op one while tracing is off). */
export const tracer = () => trace.getTracer('chatq');

/**
 * Starts tracing for this process (`role`: the command, a resource attribute) when the environment asks for it.
 * Loads the SDK only then. Idempotent.
 */
export async function startTracing(role: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (provider) return true;
  const parsed = tracingEnvSchema.safeParse(env);
  if (!parsed.success)
    throw new TracingConfigError(
      parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') +
        ' (see https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/)',
    );
  const e = parsed.data;
  // As the specification says: the signal's own endpoint as it is, the general one with /v1/traces added.
  const tracesUrl =
    e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    (e.OTEL_EXPORTER_OTLP_ENDPOINT && `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/$/, '')}/v1/traces`);
  if (!tracesUrl || e.OTEL_SDK_DISABLED === 'true' || e.OTEL_TRACES_EXPORTER === 'none') return false;
  const [sdk, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const ratio = new sdk.TraceIdRatioBasedSampler(e.OTEL_TRACES_SAMPLER_ARG);
  const root = {
    always_on: new sdk.AlwaysOnSampler(),
    always_off: new sdk.AlwaysOffSampler(),
    traceidratio: ratio,
  }[e.OTEL_TRACES_SAMPLER.replace('parentbased_', '') as 'always_on' | 'always_off' | 'traceidratio'];
  const sampler = e.OTEL_TRACES_SAMPLER.startsWith('parentbased_') ? new sdk.ParentBasedSampler({ root }) : root;
  const p = new sdk.TracerProvider({
    sampler,
    // A batch's span links its requests' traces: the first thousand of them.
    spanLimits: { linkCountLimit: 1_000 },
    resource: resourceFromAttributes({
      'service.name': e.OTEL_SERVICE_NAME ?? 'chatq',
      'chatq.role': role,
      'process.pid': process.pid,
    }),
    // The exporter reads its headers and timeouts from the standard variables itself; the endpoint is the one above.
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: tracesUrl }) })],
  });
  trace.setGlobalTracerProvider(p);
  exportFailed = reportExportFailures();
  provider = p;
  return true;
}

/** What an SDK error says, in one short line: its message when it is a serialised error (no stack), else its first line. */
function reasonOf(text: unknown): string {
  const first = String(text).split('\n')[0]!;
  try {
    const parsed = JSON.parse(first) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message.slice(0, 300);
  } catch {
    // Not a serialised error: the line itself.
  }
  return first.slice(0, 300);
}

/** How often, at most, a process says that its spans could not be sent. */
const EXPORT_FAILURE_EVERY_MS = 60_000;

/**
 * The SDK's own errors (a collector out of reach, refusing spans) as one warn line a minute, in the process's log:
 * lost spans are otherwise silent. Only the first line of the message (no payloads, no headers).
 */
function reportExportFailures(): (reason: string) => void {
  const log = createLogger(process.env.LOG_LEVEL ?? 'info', 'chatq-tracing');
  let last = 0;
  const warn = (message: string) => {
    const now = Date.now();
    if (now - last < EXPORT_FAILURE_EVERY_MS) return;
    last = now;
    log.warn({ otel: reasonOf(message) }, 'traces could not be sent (spans are lost; requests are not)');
  };
  const quiet = () => undefined;
  diag.setLogger({ error: warn, warn, info: quiet, debug: quiet, verbose: quiet }, DiagLogLevel.WARN);
  return warn;
}

/** How long an exiting process waits for its last spans to be sent (a collector out of reach does not hold it up). */
const FLUSH_MS = 3_000;

/** Sends the spans still buffered (for up to FLUSH_MS) and stops tracing, before the process exits. */
export async function stopTracing(): Promise<void> {
  const p = provider;
  provider = undefined;
  if (!p) return;
  let timer: NodeJS.Timeout | undefined;
  const sent = await Promise.race([
    p.shutdown().then(
      () => true,
      (err: unknown) => {
        exportFailed?.(err instanceof Error ? err.message : String(err));
        return true;
      },
    ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), FLUSH_MS);
    }),
  ]);
  clearTimeout(timer);
  if (!sent) exportFailed?.(`the last spans were not sent within ${FLUSH_MS / 1000} s`);
  trace.disable();
  diag.disable();
}

/** A span's W3C traceparent, for a request's record; undefined when the span is not sampled (nothing to continue). */
export function traceparent(span: Span): string | undefined {
  const c = span.spanContext();
  if (!(c.traceFlags & TraceFlags.SAMPLED)) return undefined;
  return `00-${c.traceId}-${c.spanId}-01`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The context a traceparent names (its span as the parent), or the root context when it names none. */
export function contextOf(tp: string | undefined): Context {
  const m = tp ? TRACEPARENT.exec(tp) : null;
  if (!m) return ROOT_CONTEXT;
  const spanContext: SpanContext = {
    traceId: m[1]!,
    spanId: m[2]!,
    traceFlags: Number.parseInt(m[3]!, 16),
    isRemote: true,
  };
  return trace.setSpanContext(ROOT_CONTEXT, spanContext);
}

/** A link to `span` (a batch's, a request's) when it is sampled. */
export const linkTo = (span: Span, attributes?: Attributes): Link[] =>
  span.isRecording() ? [{ context: span.spanContext(), ...(attributes ? { attributes } : {}) }] : [];

/** Starts a span under `parent` (a context), at `startTime` when given (a wait that began earlier). */
export const startSpan = (name: string, parent: Context, options: SpanOptions = {}): Span =>
  tracer().startSpan(name, options, parent);
