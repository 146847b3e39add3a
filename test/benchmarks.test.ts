import { spawnSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReadStream } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatLineError, parseInput } from '../src/producer/parse-input.js';
import { Readable } from 'node:stream';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { evaluateBatch } from '../src/shared/reports/eval-report.js';
import OpenAI, { toFile } from 'openai';
import { useApi, useWorld } from './helpers/in-process-worker.js';
import { waitFor, waitForBatch, type TestEnv } from './helpers/test-env.js';
import { lmeInstance } from './helpers/benchmark-files.js';
import { writeLongMemEvalFile } from '../bench/synthetic-longmemeval.js';

const example = (name: string) => new URL(`../examples/benchmarks/${name}`, import.meta.url).pathname;

/** Runs `script` (CommonJS) in a Node whose old space is `mb` MB. */
const parseUnder = (mb: number, script: string) =>
  spawnSync(process.execPath, [`--max-old-space-size=${mb}`, '-e', script], { encoding: 'utf8' });

/** A script counting the items and calls the built parser (dist/) reads from `path`. */
const streamScript = (path: string) => `
  (async () => {
    const { parseInput } = await import(${JSON.stringify(new URL('../dist/producer/parse-input.js', import.meta.url).href)});
    let items = 0, calls = 0;
    const opts = { source: ${JSON.stringify(path)}, defaultModel: 'm', runSalt: 's' };
    for await (const p of parseInput(require('node:fs').createReadStream(opts.source), opts)) {
      items += 1;
      if (p.ok) calls += p.drafts.length;
    }
    console.log(JSON.stringify({ items, calls }));
  })();`;

/** Per user, the custom_ids in the order their calls reached the upstream (the simulator's arrivals). */
async function callOrder(env: TestEnv, batchId: string, arrivals: Record<string, { arrivals: string[] }>) {
  const byUser = new Map<string, string[]>();
  for await (const r of readBatchRequests(env.redis, env.keys, batchId)) {
    const messages = r.body.messages as { role: string; content: string }[];
    const last = messages.at(-1)!.content;
    const order = arrivals[r.userid]!.arrivals;
    (byUser.get(r.userid) ?? byUser.set(r.userid, []).get(r.userid)!)[order.indexOf(last)] = r.customId;
  }
  return byUser;
}

describe('memory benchmarks as input: LongMemEval and LoCoMo', () => {
  const w = useWorld();

  it('runs a LongMemEval file: one fresh user per instance, its sessions before its question, accuracy by type', async () => {
    const { env } = w;
    const submitted = await env.submit(
      [await import('node:fs').then((fs) => fs.readFileSync(example('longmemeval-sample.json'), 'utf8'))],
      { source: '4-longmemeval-sample.json', defaultModel: 'gpt-4o-mini' },
    );
    await w.startWorker();
    const batch = await waitForBatch(env, submitted.batchId);
    expect(batch).toMatchObject({ status: 'completed', total: 17, succeeded: 17, judging: 0 });
    const users = w.sim.stats().users;
    const order = await callOrder(env, submitted.batchId, users);
    expect(order.size).toBe(6);
    for (const ids of order.values()) {
      // Every session call reached the upstream before the question did.
      expect(ids.at(-1)).not.toContain('/session-');
      expect(ids.slice(0, -1).every((id) => id.includes('/session-'))).toBe(true);
    }
    const s = await evaluateBatch(env.redis, env.keys, batch);
    expect(s).toMatchObject({ passed: 3, failed: 3, ungraded: 0 });
    expect(s.byTag).toMatchObject({
      'single-session-user': { passed: 2, failed: 0 },
      abstention: { passed: 1, failed: 0 },
      'knowledge-update': { passed: 1, failed: 0 },
      'multi-session': { passed: 0, failed: 1 },
      'temporal-reasoning': { passed: 0, failed: 1 },
      'single-session-preference': { passed: 0, failed: 1 },
    });
    expect(s.costNano.grading).toBeGreaterThan(0);
    // No judge call carried a userid; every user made its own calls only.
    expect(users['(none)']!.calls).toBe(6);
  });

  it('runs a LoCoMo file: two speakers over dated sessions, its questions after them, by category', async () => {
    const { env } = w;
    const submitted = await env.submit(
      [await import('node:fs').then((fs) => fs.readFileSync(example('locomo-sample.json'), 'utf8'))],
      { source: '5-locomo-sample.json', defaultModel: 'gpt-4o-mini', benchmark: { types: ['single-hop', 'temporal'] } },
    );
    await w.startWorker();
    const batch = await waitForBatch(env, submitted.batchId);
    expect(batch).toMatchObject({ status: 'completed', total: 4 });
    const order = [...(await callOrder(env, submitted.batchId, w.sim.stats().users)).values()][0]!;
    expect(order).toEqual(['conv-demo/session-1', 'conv-demo/session-2', 'conv-demo/qa-1', 'conv-demo/qa-2']);
    const s = await evaluateBatch(env.redis, env.keys, batch);
    expect(Object.keys(s.byTag).sort()).toEqual(['single-hop', 'temporal']);
    expect(s.byTag['single-hop']).toMatchObject({ passed: 1, failed: 0 });
  });

  it('reads a large file as a stream: memory stays flat whatever its size', async () => {
    const path = join(tmpdir(), `chatq-lme-${process.pid}.json`);
    // 400 instances of ~90 KB: a 35 MB file, read an item at a time.
    const size = writeLongMemEvalFile(path, 400, { sessions: 20, turnChars: 3_000 });
    expect(size).toBeGreaterThan(30 * 1024 * 1024);
    // A V8 heap of 24 MB (old space) cannot hold the file: read whole, it dies out of memory (the control); the
    // streamed parse reads every item and builds every call within it. A bound on the heap, not a sample of it.
    const whole = parseUnder(24, `JSON.parse(require('node:fs').readFileSync(${JSON.stringify(path)}, 'utf8')).length`);
    expect(whole.status).not.toBe(0);
    expect(whole.stderr).toContain('heap out of memory');
    const streamed = parseUnder(24, streamScript(path));
    expect(streamed.stderr).toBe('');
    expect(JSON.parse(streamed.stdout)).toEqual({ items: 400, calls: 400 * 21 });
    // --limit and --types read a subset.
    const opts = { source: path, defaultModel: 'm', runSalt: 's' };
    let limited = 0;
    const subset = { ...opts, benchmark: { limit: 7, types: ['temporal-reasoning'] } };
    for await (const parsed of parseInput(createReadStream(path), subset)) {
      if (parsed.ok) expect(parsed.drafts.at(-1)!.tags).toContain('temporal-reasoning');
      limited += 1;
    }
    expect(limited).toBe(7);
    rmSync(path);
  });

  it('an item of millions of JSON values is refused as it streams, in memory of the bound, and the items after it are read', () => {
    const path = join(tmpdir(), `chatq-tokens-${process.pid}.json`);
    // One 30 MB item of ten million numbers, as pretty-printed JSON writes them ("1, 1, ..."), then a small one:
    // parsed whole, the first would be ten million values on the event loop at once.
    const fd = openSync(path, 'w');
    writeSync(fd, '[{"numbers": [');
    const run = '1, '.repeat(100_000);
    for (let i = 0; i < 100; i++) writeSync(fd, run);
    writeSync(fd, '1]}, {"small": [1, 2]}]');
    closeSync(fd);
    try {
      const read = parseUnder(
        24,
        `(async () => {
          const { readInputRecords } = await import(${JSON.stringify(new URL('../dist/shared/input-records.js', import.meta.url).href)});
          const out = [];
          for await (const r of readInputRecords(require('node:fs').createReadStream(${JSON.stringify(path)}))) out.push(r);
          console.log(JSON.stringify(out));
        })();`,
      );
      expect(read.stderr).toBe('');
      expect(JSON.parse(read.stdout)).toEqual([
        {
          kind: 'item',
          line: 1,
          refused: 'item holds more than 200000 JSON values (array elements and object members); the limit is 200000',
        },
        { kind: 'item', line: 2, text: '{"small":[1,2]}' },
      ]);
    } finally {
      rmSync(path);
    }
  });
});

describe('memory benchmark items obey the bounds of the lines they make', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: 'tok-bench', CHATQ_MODEL: 'gpt-4o-mini' });

  it('an item past them is one bad line with its reason, and the rest of the file runs', async () => {
    const items = [
      lmeInstance('many-sessions', 100_000, 0),
      lmeInstance('more-sessions-than-calls', 1_500, 0),
      lmeInstance('long-session', 1, 5_000),
      lmeInstance('long-answer', 1, 2, 10, { answer: 'x'.repeat(10_000_000) }),
      lmeInstance('fine', 2),
    ];
    const text = JSON.stringify(items);
    const opts = { source: 'b.json', defaultModel: 'gpt-4o-mini', runSalt: 's' };
    const out = [];
    for await (const p of parseInput(Readable.from([text]), opts)) out.push(p.ok ? p.drafts.length : p.error);
    expect(out).toEqual([
      // 100,000 sessions are over 200,000 JSON values: refused as it is read, never parsed.
      expect.objectContaining({ line: 1, item: true, message: expect.stringMatching(/more than 200000 JSON values/) }),
      expect.objectContaining({ line: 2, field: 'haystack_sessions', message: expect.stringMatching(/1500 sessions/) }),
      expect.objectContaining({ line: 3, field: 'haystack_sessions.0', message: expect.stringMatching(/5000 turns/) }),
      expect.objectContaining({ line: 4, field: 'answer', message: expect.stringMatching(/16384 characters/) }),
      3,
    ]);
    const submitted = await w.env.submit([text], { source: 'b.json', defaultModel: 'gpt-4o-mini' });
    expect(submitted).toMatchObject({ acceptedRequests: 3, rejectedLines: 4 });
    await w.startWorker();
    expect(await waitForBatch(w.env, submitted.batchId)).toMatchObject({ status: 'completed', succeeded: 3 });
  });

  it("a field of the wrong shape says what it got; a JSON array's bad items are items, not JSONL lines", async () => {
    const opts = { source: 'b.json', defaultModel: 'gpt-4o-mini', runSalt: 's' };
    const text = JSON.stringify([lmeInstance('object-answer', 1, 2, 10, { answer: { text: 'Ada' } }), 7]);
    const out = [];
    for await (const p of parseInput(Readable.from([text]), opts)) if (!p.ok) out.push(formatLineError(p.error));
    expect(out).toEqual([
      'b.json: item 1: field "answer": expected a string or a number, got object',
      'b.json: item 2: expected a JSON object as this item',
    ]);
    const upload = await fetch(`${a.api.url}/v1/files`, {
      method: 'POST',
      headers: { authorization: 'Bearer tok-bench' },
      body: (() => {
        const form = new FormData();
        form.append('purpose', 'batch');
        form.append('file', new Blob(['[{"a": 1}, 7, {"b": 2}]']), 'bad.json');
        return form;
      })(),
    });
    expect(upload.status).toBe(400);
    expect((await upload.json()).error.message).toBe(
      'The file is not a valid JSON array of objects: item 2: expected a JSON object as this item',
    );
  });

  it('an uploaded item over the 2 MiB line bound, within the item bound, is stored and imported as an item', async () => {
    await w.startWorker();
    const client = new OpenAI({ baseURL: `${a.api.url}/v1`, apiKey: 'tok-bench', maxRetries: 0 });
    // 40 sessions of 80 KB: a 3 MB item.
    const big = lmeInstance('big', 40, 2, 40_000);
    const file = await client.files.create({
      file: await toFile(Buffer.from(JSON.stringify([big, lmeInstance('small', 1)])), 'lme.json'),
      purpose: 'batch',
    });
    expect(file.bytes).toBeGreaterThan(3_000_000);
    // The stored file reads back as the JSON array it was.
    const stored = JSON.parse(await (await client.files.content(file.id)).text());
    expect(stored.map((x: { question_id: string }) => x.question_id)).toEqual(['big', 'small']);
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    const done = await waitFor('the batch', async () => {
      const b = await client.batches.retrieve(batch.id);
      return b.status === 'completed' || b.status === 'failed' ? b : undefined;
    });
    expect(done.errors?.data ?? []).toEqual([]);
    expect(done.request_counts).toMatchObject({ total: 43, completed: 43 });
  });
});
