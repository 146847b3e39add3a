import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../src/cli/local-redis.js';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { startSimulator, type Simulator } from '../src/simulator/simulator-server.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './helpers/otlp-receiver.js';
import { createTestEnv, runCli, spawnWorker, waitForBatch, type TestEnv } from './helpers/test-env.js';

const PROMPT_MARK = 'PROMPT-MARK-5d1c';
const API_KEY = 'sk-trace-test-secret-93ab';

/** A JSONL file of `n` chat lines of gpt-4o-mini: each line's fields from `fields(i)`, its message `content` ("hi"). */
function turnsFile(name: string, n: number, fields: (i: number) => Record<string, unknown> & { content?: string }) {
  const file = join(mkdtempSync(join(tmpdir(), 'chatq-trace-')), `${name}.jsonl`);
  const lines = Array.from({ length: n }, (_, i) => {
    const { content = 'hi', ...rest } = fields(i);
    return JSON.stringify({ model: 'gpt-4o-mini', ...rest, messages: [{ role: 'user', content }] });
  });
  writeFileSync(file, lines.join('\n'));
  return file;
}

describe('OpenTelemetry traces (OTLP/HTTP to a local receiver)', () => {
  let receiver: OtlpReceiver | undefined;
  let sim: Simulator | undefined;
  let env: TestEnv | undefined;
  const ready = () => ({ receiver: receiver!, sim: sim!, env: env! });
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    sim = await startSimulator({ latencyMs: 5, jitterMs: 2 });
    env = await createTestEnv();
  });
  afterAll(async () => {
    await env?.cleanup();
    await sim?.close();
    await receiver?.close();
  });

  it("one request's spans from the importer and the worker in one trace: parent and child right, GenAI attributes, no message text", async () => {
    const { receiver, sim, env } = ready();
    const otel = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_TRACES_SAMPLER: 'always_on',
      OTEL_SERVICE_NAME: 'chatq-test',
      OTEL_BSP_SCHEDULE_DELAY: '200',
    };
    const file = turnsFile('turns', 6, (i) => ({
      custom_id: `tr-${i}`,
      user: `trace-user-${i % 3}`,
      max_tokens: 64,
      content: `${PROMPT_MARK} turn ${i}`,
    }));
    const enqueued = await runCli(['enqueue', file], env.env(otel));
    expect(enqueued.code, enqueued.stderr).toBe(0);
    const batchId = enqueued.stdout.trim();
    const worker = spawnWorker(env.env({ ...otel, CHATQ_BASE_URL: sim.url, CHATQ_API_KEY: API_KEY }));
    await waitForBatch(env, batchId, 60_000);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);

    const spans = receiver.spans;
    const role = (s: ReceivedSpan) => s.resource['chatq.role'];
    const records = [];
    for await (const r of readBatchRequests(env.redis, env.keys, batchId)) records.push(r);
    const request = records.find((r) => r.customId === 'tr-0')!;
    const imported = spans.find((s) => s.name === 'chatq import' && s.attributes['chatq.request.id'] === request.id);
    expect(imported, `no import span for ${request.id}: ${spans.map((s) => s.name).join(', ')}`).toBeDefined();
    expect(role(imported!)).toBe('enqueue');
    expect(imported!.parentSpanId).toBeUndefined();
    const inTrace = spans.filter((s) => s.traceId === imported!.traceId);
    expect(new Set(inTrace.map(role))).toEqual(new Set(['enqueue', 'worker']));
    expect(new Set(inTrace.map((s) => s.resource['service.name']))).toEqual(new Set(['chatq-test']));
    const byName = (name: string) => inTrace.filter((s) => s.name === name);
    const [run] = byName('chatq run');
    expect(role(run!)).toBe('worker');
    expect(run!.parentSpanId).toBe(imported!.spanId);
    expect(run!.attributes['chatq.request.id']).toBe(request.id);
    expect(byName('chatq queue wait')[0]!.parentSpanId).toBe(imported!.spanId);
    for (const child of ['chatq capacity wait', 'chat gpt-4o-mini', 'chatq finish'])
      expect(
        byName(child).map((s) => s.parentSpanId),
        child,
      ).toEqual([run!.spanId]);
    const call = byName('chat gpt-4o-mini')[0]!;
    expect(call.kind).toBe(3); // CLIENT
    expect(call.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.request.max_tokens': 64,
      'gen_ai.usage.input_tokens': request.usage.prompt_tokens,
      'gen_ai.usage.output_tokens': request.usage.completion_tokens,
      'http.response.status_code': 200,
    });
    expect(call.attributes['gen_ai.usage.output_tokens']).toBeGreaterThan(0);
    expect(call.attributes['gen_ai.response.id']).toMatch(/\S/);
    // The batch is a trace of its own that links each request's.
    const batch = spans.find((s) => s.name === 'chatq batch' && s.attributes['chatq.batch.id'] === batchId)!;
    expect(batch.traceId).not.toBe(imported!.traceId);
    expect(batch.links).toContainEqual({ traceId: imported!.traceId, spanId: imported!.spanId });
    expect(batch.links).toHaveLength(6);
    // Never message text (asked or answered), never a key.
    const exported = receiver.raw.join('\n');
    const reply = String((request.response!.choices as { message: { content: string } }[])[0]!.message.content);
    expect(reply.length).toBeGreaterThan(10);
    for (const secret of [PROMPT_MARK, reply.slice(0, 40), API_KEY]) expect(exported).not.toContain(secret);
  });

  it("the importer's sampling decides: a request it did not sample is traced by no worker", async () => {
    const { receiver, sim, env } = ready();
    const file = turnsFile('off', 4, (i) => ({ custom_id: `off-${i}`, user: `off-user-${i}` }));
    const otel = (sampler: string) => ({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_TRACES_SAMPLER: sampler,
      OTEL_BSP_SCHEDULE_DELAY: '200',
    });
    const before = receiver.spans.length;
    const enqueued = await runCli(['enqueue', file], env.env(otel('always_off')));
    expect(enqueued.code, enqueued.stderr).toBe(0);
    const batchId = enqueued.stdout.trim();
    const worker = spawnWorker(env.env({ ...otel('always_on'), CHATQ_BASE_URL: sim.url }));
    await waitForBatch(env, batchId, 60_000);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(receiver.spans.slice(before).map((s) => s.name)).toEqual([]);
  });

  it('a collector out of reach loses spans, never requests: the import succeeds and the command exits', async () => {
    const { env } = ready();
    const file = turnsFile('down', 1, () => ({ user: 'down-user' }));
    const enqueued = await runCli(
      ['enqueue', file],
      env.env({
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await freePort()}`,
        OTEL_TRACES_SAMPLER: 'always_on',
      }),
    );
    expect(enqueued.code, enqueued.stderr).toBe(0);
    expect(await env.batch(enqueued.stdout.trim())).toMatchObject({ total: 1 });
    // Said once in the log, not lost in silence.
    expect(enqueued.stderr.match(/traces could not be sent/g)).toHaveLength(1);
  });
});
