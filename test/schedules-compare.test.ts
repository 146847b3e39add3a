import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startProducerServices } from '../src/cli/producer-services.js';
import { getBatch } from '../src/shared/batches/read-store.js';
import { openScheduleQueue } from '../src/shared/files/schedules.js';
import type { BatchRecord } from '../src/shared/batch-record.js';
import { runCli, testLogger, waitFor, waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

function suiteFile(lines: unknown[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'chatq-suite-')), 'suite.jsonl');
  writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n'));
  return file;
}

const SUITE = [
  {
    script_id: 'memory',
    user: 'ada',
    turns: ['My name is Ada.', { content: 'What is my name?', expect: { contains: 'Ada' } }],
  },
  {
    custom_id: 'greeting',
    user: 'bo',
    messages: [{ role: 'user', content: 'hello' }],
    expect: [{ contains: 'hello' }, { not_contains: 'sorry' }],
  },
];

describe('scheduled evaluation runs', () => {
  const w = useWorld({ latencyMs: 2, recordMessages: true });
  let producer: { close(): Promise<void> } | undefined;
  afterEach(async () => {
    await producer?.close();
  });

  const batchesNamed = async (prefix: string): Promise<BatchRecord[]> => {
    const ids = await w.env.redis.zrange(w.env.keys.batches, 0, -1);
    const all = await Promise.all(ids.map((id) => getBatch(w.env.redis, w.env.keys, id)));
    return all.filter((b): b is BatchRecord => b?.name.startsWith(prefix) === true);
  };

  it('a schedule fires repeatedly, each firing a graded batch with fresh users; removed, it stops', async () => {
    const env = w.env.env({ CHATQ_SCHEDULE_MIN_INTERVAL_MS: '1000' });
    const rejected = await runCli(
      [
        'schedule',
        'add',
        'nightly',
        suiteFile([...SUITE, { user: 'x', turns: [] }]),
        '--every',
        '1000',
        '--model',
        'gpt-4o-mini',
      ],
      env,
    );
    expect(rejected.code).toBe(2);
    expect(rejected.stderr).toMatch(/suite\.jsonl:3: field "turns": needs at least one turn/);
    expect(await w.env.redis.keys(`${w.env.prefix}:file:*`)).toEqual([]);
    const added = await runCli(
      ['schedule', 'add', 'nightly', suiteFile(SUITE), '--every', '1000', '--model', 'gpt-4o-mini'],
      env,
    );
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('schedule "nightly": every 1000 ms, 2 lines, fresh users each run');
    expect((await runCli(['schedule', 'list'], env)).stdout).toMatch(
      /nightly\s+every 1000 ms\s+suite\.jsonl\s+gpt-4o-mini\s+fresh/,
    );

    producer = startProducerServices(w.env.config(), testLogger());
    await w.startWorker();
    const runs = await waitFor(
      'two graded runs',
      async () => {
        const done = (await batchesNamed('nightly@')).filter((b) => b.status === 'completed');
        return done.length >= 2 ? done : undefined;
      },
      30_000,
      200,
    );
    for (const b of runs) {
      expect(b.name).toMatch(/^nightly@\d{4}-\d{2}-\d{2}T.*\/gpt-4o-mini$/);
      expect(b).toMatchObject({ total: 3, succeeded: 3, evalPass: 2, evalFail: 0 });
      expect(b.metadata.schedule).toBe('nightly');
    }
    // Fresh users: every run's "ada" is a new user, so the simulator saw more users than the suite has.
    expect(Object.keys(w.sim.stats().users).length).toBeGreaterThanOrEqual(4);

    const evalRun = await runCli(['eval', runs[0]!.id, '--min-pass', '1'], env);
    expect(evalRun.code).toBe(0);
    expect(evalRun.stdout).toContain('2/2 passed (100.0%)');

    expect((await runCli(['schedule', 'remove', 'nightly'], env)).code).toBe(0);
    // Removed: no job scheduler and no firing waiting, delayed or at work is left, so no run can start again.
    const queue = openScheduleQueue(w.env.redis, w.env.keys.prefix);
    await waitFor('no firing left', async () => {
      const [schedulers, counts] = await Promise.all([
        queue.getJobSchedulers(),
        queue.getJobCounts('active', 'waiting', 'delayed', 'prioritized'),
      ]);
      return schedulers.length === 0 && Object.values(counts).every((n) => n === 0);
    });
    await queue.close();
    expect((await runCli(['schedule', 'list'], env)).stdout.trim()).toBe('no schedules');
  });

  it('a schedule keeps its --judge-prompt: every run is judged with it', async () => {
    const env = w.env.env({ CHATQ_SCHEDULE_MIN_INTERVAL_MS: '1000' });
    const prompt = join(mkdtempSync(join(tmpdir(), 'chatq-judge-')), 'prompt.txt');
    writeFileSync(prompt, 'HOUSE JUDGE: is "{{reply}}" about {{answer}}? Answer JSON.');
    const suite = suiteFile([
      { user: 'ed', messages: [{ role: 'user', content: 'My name is Ed.' }], expect: { judge: { answer: 'Ed' } } },
    ]);
    const added = await runCli(
      ['schedule', 'add', 'judged', suite, '--every', '1000', '--model', 'gpt-4o-mini', '--judge-prompt', prompt],
      env,
    );
    expect(added.code, added.stderr).toBe(0);
    producer = startProducerServices(w.env.config(), testLogger());
    await w.startWorker();
    await waitFor('a judged run', async () => (await batchesNamed('judged@')).some((b) => b.status === 'completed'));
    expect((await runCli(['schedule', 'remove', 'judged'], env)).code).toBe(0);
    const judgeCalls = (w.sim.stats().users['(none)']?.messages ?? []) as { content: string }[][];
    expect(judgeCalls.length).toBeGreaterThan(0);
    expect(judgeCalls.every((m) => m.some((x) => x.content.startsWith('HOUSE JUDGE: is "')))).toBe(true);
  });

  it('eval reports failed expectations; compare finds the known regression and the fix', async () => {
    const env = w.env.env();
    await w.startWorker();
    const before = await w.env.submit(
      [
        {
          script_id: 'memory',
          user: 'cy',
          model: 'gpt-4o-mini',
          turns: ['My name is Cy.', { content: 'What is my name?', expect: { contains: 'Cy' } }],
        },
        {
          custom_id: 'json-reply',
          user: 'dee',
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'say hi' }],
          expect: { json: true },
        },
      ].map((l) => JSON.stringify(l)),
    );
    // The regression: the new suite version forgets to tell the name. The fix: the reply no longer has to be JSON.
    const after = await w.env.submit(
      [
        {
          script_id: 'memory',
          user: 'cy2',
          model: 'gpt-4o-mini',
          turns: ['Hello there.', { content: 'What is my name?', expect: { contains: 'Cy' } }],
        },
        {
          custom_id: 'json-reply',
          user: 'dee2',
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'say hi' }],
          expect: { contains: 'hi' },
        },
      ].map((l) => JSON.stringify(l)),
    );
    await waitForBatch(w.env, before.batchId);
    await waitForBatch(w.env, after.batchId);

    const evalBefore = await runCli(['eval', before.batchId, '--min-pass', '0.9'], env);
    expect(evalBefore.code).toBe(1);
    expect(evalBefore.stdout).toContain('1/2 passed (50.0%)');
    expect(evalBefore.stdout).toMatch(/json-reply\s+json\s+reply is not JSON/);

    const compared = await runCli(['compare', before.batchId, after.batchId, '--format', 'json'], env);
    expect(compared.code).toBe(1);
    const c = JSON.parse(compared.stdout);
    expect(
      c.requests
        .filter((r: { change: string }) => r.change === 'regressed')
        .map((r: { customId: string }) => r.customId),
    ).toEqual(['memory-turn-2']);
    expect(
      c.requests.filter((r: { change: string }) => r.change === 'fixed').map((r: { customId: string }) => r.customId),
    ).toEqual(['json-reply']);
    expect(c.a.passRate).toBe(0.5);
    expect(c.b.passRate).toBe(0.5);
    expect(c.a.tokens).toBeGreaterThan(0);
    expect(c.a.p50LatencyMs).not.toBeNull();
    const table = await runCli(['compare', before.batchId, after.batchId], env);
    expect(table.stdout).toMatch(/pass rate\s+50\.0%\s+50\.0%\s+1 regressed, 1 fixed/);
    expect(table.stdout).toMatch(/memory-turn-2\s+pass\s+fail\s+regressed/);
  });
});
