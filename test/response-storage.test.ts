import { describe, expect, it } from 'vitest';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { msgpack } from '../src/shared/msgpack.js';
import { decodeBody, encodeBody } from '../src/shared/body-codec.js';
import { decodeFinishedRecord } from '../src/shared/finished-record.js';
import { decodeResponse, encodeResponse } from '../src/shared/response-codec.js';
import { FINISHED_RECORD_FIELDS } from '../src/shared/request-record.js';
import { useWorld } from './helpers/in-process-worker.js';
import { waitForBatch } from './helpers/test-env.js';

const line = (i: number, content: string) =>
  JSON.stringify({ custom_id: `c${i}`, user: `u${i}`, model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

describe('responses are stored compactly', () => {
  const w = useWorld();

  it('keeps each response compact (under half its JSON here) and reads it back whole', async () => {
    const submitted = await w.env.submit([
      line(1, 'Hi, I am Sam and I live in Lisbon.'),
      line(2, `Tell me about ${'the river and the hills of the old town, '.repeat(20)}`),
    ]);
    await w.startWorker();
    await waitForBatch(w.env, submitted.batchId);
    const marks: Record<string, number[]> = {};
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, submitted.batchId)) {
      const json = JSON.stringify(r.response);
      expect(r.response).toMatchObject({ object: 'chat.completion', choices: [{ message: { role: 'assistant' } }] });
      const done = (await w.env.redis.getBuffer(w.env.keys.requestDone(r.id)))!;
      // The frame: the packed record's length, the record, then the response as stored.
      const stored = done.subarray(4 + done.readUInt32BE(0));
      marks[r.customId] = [...stored.subarray(0, 2)];
      expect(stored.length).toBeLessThan(json.length / 2);
    }
    // A reply of the usual size: its usual phrases coded as single bytes (no compressor to set up).
    expect(marks).toEqual({ c1: [0, 2], c2: [0, 2] });
  });
});

describe('the stored form of a response', () => {
  it('reads back exactly what was stored, whatever the text holds, in both forms', () => {
    const replies = [
      {
        id: 'chatcmpl-1',
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok' } }],
      },
      {
        id: 'chatcmpl-\u0001"},"finish_reason":"',
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: '\u0002 \u001f é 😀 \\ \n "content":"stop"' } }],
        usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      },
      { object: 'chat.completion', choices: [{ message: { content: 'x'.repeat(5_000) } }] },
    ];
    // Tiny: kept as it is; of the usual size: phrase-coded; long: compressed.
    const forms = replies.map((reply) => {
      const json = JSON.stringify(reply);
      const stored = encodeResponse(json);
      const bytes = Buffer.isBuffer(stored) ? stored : Buffer.from(stored);
      expect(decodeResponse(bytes)).toBe(json);
      return [...bytes.subarray(0, 2)];
    });
    expect(forms).toEqual([[...Buffer.from('{"')], [0, 2], [0, 1]]);
    // Text that is not JSON.stringify's (a raw control character) is compressed instead, and reads back too.
    const raw = `{"content":"a\u0001b${'"finish_reason":"stop"'.repeat(9)}"}`;
    const stored = encodeResponse(raw);
    const bytes = Buffer.isBuffer(stored) ? stored : Buffer.from(stored);
    expect([...bytes.subarray(0, 2)]).toEqual([0, 1]);
    expect(decodeResponse(bytes)).toBe(raw);
  });
});

describe('the stored form of a body', () => {
  it('codes the usual phrases of a chat request when that is shorter, and reads back exactly what was stored', () => {
    const bodies = [
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello from user 1, tell me something' }] },
      {
        model: 'gpt-4o',
        messages: [
          { role: 'system', content: 'Session date: 2023/05/20' },
          { role: 'user', content: '\u0003 "},{"role":"user","content":" é 😀 \\ \n' },
          { role: 'assistant', content: 'ok' },
        ],
        max_tokens: 16,
      },
    ];
    for (const body of bodies) {
      const json = JSON.stringify(body);
      const stored = encodeBody(json);
      expect([stored.charCodeAt(0), stored.charCodeAt(1)]).toEqual([0, 3]);
      expect(Buffer.byteLength(stored)).toBeLessThan(Buffer.byteLength(json) * 0.7);
      expect(decodeBody(stored)).toBe(json);
    }
    // Nothing to code, or text that is not JSON.stringify's (a raw control character): kept as it is.
    for (const json of ['{"x":1}', '{"content":"a\u0001b","model":"gpt-4o-mini"}']) expect(encodeBody(json)).toBe(json);
  });
});

describe('a finished request is one record', () => {
  const w = useWorld();

  it('keeps one key with an expiry (no hash, body or response beside it) and reads back whole, a failure too', async () => {
    const submitted = await w.env.submit([
      line(1, 'Hi, I am Sam.'),
      line(1, 'What did I say my name was?').replace('"c1"', '"c1b"'),
      line(2, '[fail 400] a request the upstream refuses'),
    ]);
    await w.startWorker();
    expect(await waitForBatch(w.env, submitted.batchId)).toMatchObject({ succeeded: 2, failed: 1 });
    const keys = await w.env.redis.keys(`${w.env.keys.prefix}:req:*`);
    const read: Record<string, unknown>[] = [];
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, submitted.batchId)) {
      const own = keys.filter((k) => k.endsWith(`:req:${r.id}`) || k.includes(`:req:${r.id}:`));
      expect(own).toHaveLength(1);
      expect(await w.env.redis.ttl(own[0]!)).toBeGreaterThan(0);
      read.push({ ...r, response: r.response && 'kept' });
    }
    expect(read).toMatchObject([
      { customId: 'c1', status: 'succeeded', batch: submitted.batchId, seq: 1, line: 1, attempts: 1 },
      { customId: 'c1b', status: 'succeeded', seq: 2, line: 2, response: 'kept', httpStatus: 200 },
      { customId: 'c2', status: 'failed', error: { code: 'forced_failure' }, httpStatus: 400, response: null },
    ]);
    expect(read[1]!.userid).toBe(read[0]!.userid);
    expect(read[0]).toMatchObject({ body: { messages: [{ content: 'Hi, I am Sam.' }] }, claims: 1 });
    expect((read[0] as { usage: { total_tokens: number } }).usage.total_tokens).toBeGreaterThan(0);
    expect((read[0] as { attemptLog: unknown[] }).attemptLog).toEqual([
      expect.objectContaining({ status: 200, code: 'ok' }),
    ]);
  });
});

describe('the finished record format', () => {
  const w = useWorld();

  it('reads what Redis Lua cmsgpack writes: every number size, strings of every length class, nested arrays', async () => {
    const lua = `return cmsgpack.pack({ 0, 127, 128, 255, 256, 65535, 65536, 4294967296, 1795964076910, -1, -33, -129,
      -40000, -3000000000, 0.5, false, true, string.rep('a', 31), string.rep('b', 32), string.rep('c', 256),
      string.rep('d', 65536), { 1, { 'x' } }, '' })`;
    const packed = (await w.env.redis.callBuffer('EVAL', lua, '0')) as Buffer;
    expect(msgpack.unpack(packed)).toEqual([
      0,
      127,
      128,
      255,
      256,
      65535,
      65536,
      4294967296,
      1795964076910,
      -1,
      -33,
      -129,
      -40000,
      -3000000000,
      0.5,
      false,
      true,
      'a'.repeat(31),
      'b'.repeat(32),
      'c'.repeat(256),
      'd'.repeat(65536),
      [1, ['x']],
      '',
    ]);
    expect(() => msgpack.unpack(packed.subarray(0, packed.length - 1))).toThrow();
  });

  it('refuses a record cut short or of another version, naming the request', () => {
    const record = msgpack.pack([1, 'x']);
    const frame = Buffer.alloc(4);
    frame.writeUInt32BE(record.length);
    expect(() => decodeFinishedRecord('b-1', Buffer.concat([frame, record]))).toThrow(/b-1 .*version 1/);
    frame.writeUInt32BE(record.length + 10);
    expect(() => decodeFinishedRecord('b-1', Buffer.concat([frame, record]))).toThrow(/b-1 .*cut short/);
  });

  it('keeps its fields in a fixed order: records already stored read by it', () => {
    expect(FINISHED_RECORD_FIELDS).toEqual(
      'custom_id userid model status attempts claims error http_status upstream_request_id latency_ms prompt_tokens completion_tokens total_tokens cached_tokens reasoning_tokens cost_nano created_at finished_at attempt_log line expect grade on_failure history prev conv tags'.split(
        ' ',
      ),
    );
  });
});
