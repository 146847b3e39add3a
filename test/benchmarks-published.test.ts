import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { publishedLmeInstance, publishedLocomoSample } from './helpers/benchmark-files.js';
import { useWorld } from './helpers/in-process-worker.js';
import { runCli, waitForBatch, type TestEnv } from './helpers/test-env.js';

type Message = { role: string; content: string };
const dir = mkdtempSync(join(tmpdir(), 'chatq-published-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Each user's calls at the upstream, in the order they arrived: their custom_ids. */
async function arrivalOrder(env: TestEnv, batchId: string, users: Record<string, { arrivals: string[] }>) {
  const byUser = new Map<string, string[]>();
  for await (const r of readBatchRequests(env.redis, env.keys, batchId)) {
    const last = (r.body.messages as Message[]).at(-1)!.content;
    const order = users[r.userid]!.arrivals;
    (byUser.get(r.userid) ?? byUser.set(r.userid, []).get(r.userid)!)[order.indexOf(last)] = r.customId;
  }
  return byUser;
}

describe('memory benchmarks run as published', () => {
  const w = useWorld({ recordMessages: true });
  const submitFile = (items: unknown[], opts: Record<string, unknown> = {}) =>
    w.env.submit([JSON.stringify(items)], { source: 'bench.json', defaultModel: 'gpt-4o-mini', ...opts });

  it('nothing of the file reaches the upstream but what was said in its sessions, their dates and the questions', async () => {
    const lme = publishedLmeInstance();
    const locomo = publishedLocomoSample();
    const a = await submitFile([lme]);
    const b = await submitFile([locomo]);
    await w.startWorker();
    await waitForBatch(w.env, a.batchId);
    await waitForBatch(w.env, b.batchId);
    const said = new Set([
      ...lme.haystack_sessions.flat().map((t) => t.content),
      ...Object.values(locomo.conversation)
        .filter(Array.isArray)
        .flat()
        .map((t: { speaker: string; text: string; blip_caption?: string }) =>
          t.blip_caption ? `${t.speaker}: ${t.text} [shares ${t.blip_caption}]` : `${t.speaker}: ${t.text}`,
        ),
    ]);
    const dates = [
      ...lme.haystack_dates,
      locomo.conversation.session_1_date_time,
      locomo.conversation.session_2_date_time,
    ];
    const users = w.sim.stats().users;
    const sent = Object.entries(users)
      .filter(([u]) => u !== '(none)')
      .flatMap(([, u]) => u.messages!.flat() as Message[]);
    expect(sent.length).toBeGreaterThan(10);
    for (const m of sent) {
      if (said.has(m.content)) continue;
      const framing =
        /^(?:The conversation below took place on (.+)\.|\[chatq: end of the recorded session of (.+); reply "OK"\])$/.exec(
          m.content,
        );
      if (framing) {
        expect(dates).toContain(framing[1] ?? framing[2]);
        continue;
      }
      // Else it is a question, as its harness asks it.
      expect(m.content).toMatch(
        /^Current Date: 2023\/05\/30 \(Tue\) 18:00\nQuestion: What is the name of my beagle\?\nAnswer:$|Short answer:\n$/,
      );
    }
    const everything = JSON.stringify(sent);
    for (const leak of [
      'answer_',
      'sharegpt_',
      'has_answer',
      'e47becba',
      'conv-7',
      'D1:1',
      'single-session-user',
      'example.invalid',
    ])
      expect(everything).not.toContain(leak);
  });

  it('takes its sessions in time order (ties in file order), not file order', async () => {
    const a = await submitFile([publishedLmeInstance()]);
    const b = await submitFile([publishedLocomoSample()], { benchmark: { types: ['single-hop'] } });
    await w.startWorker();
    await waitForBatch(w.env, a.batchId);
    await waitForBatch(w.env, b.batchId);
    const users = w.sim.stats().users;
    expect([...(await arrivalOrder(w.env, a.batchId, users)).values()][0]).toEqual([
      'e47becba/session-2',
      'e47becba/session-1',
      'e47becba/session-3',
      'e47becba',
    ]);
    expect([...(await arrivalOrder(w.env, b.batchId, users)).values()][0]).toEqual([
      'conv-7/session-2',
      'conv-7/session-1',
      'conv-7/qa-2',
    ]);
  });

  it('--judge-prompt replaces the built-in prompt of a benchmark file too', async () => {
    const template = 'Grade {{reply}} against {{answer}} for {{question}} [custom template]';
    const a = await submitFile([publishedLmeInstance()], { judgePrompt: template });
    await w.startWorker();
    await waitForBatch(w.env, a.batchId);
    const judged = (w.sim.stats().users['(none)']!.messages!.flat() as Message[]).map((m) => m.content);
    expect(judged.length).toBeGreaterThan(0);
    expect(judged.every((c) => !c.includes('[custom template]'))).toBe(false);
    expect(judged.find((c) => c.includes('[custom template]'))).toContain('Biscuit');
  });

  it('special-token strings are text: estimated, bounded and sent like any other characters', async () => {
    const eot = 'Here is <|endoftext|> in the middle';
    const file = join(dir, 'eot.jsonl');
    writeFileSync(
      file,
      [
        JSON.stringify({ user: 'u1', model: 'gpt-4o-mini', messages: [{ role: 'user', content: eot }] }),
        JSON.stringify({ user: 'u2', model: 'gpt-4o-mini', turns: [eot, 'and <|fim_prefix|> again'] }),
      ].join('\n'),
    );
    const bench = join(dir, 'eot.json');
    writeFileSync(bench, JSON.stringify([publishedLmeInstance()]));
    for (const f of [file, bench]) {
      const est = await runCli(['estimate', f, '--model', 'gpt-4o-mini', '--json'], w.env.env());
      expect(est.stderr).toBe('');
      expect(est.code).toBe(0);
    }
    const lines = await w.env.submit([
      JSON.stringify({ user: 'u1', model: 'gpt-4o-mini', messages: [{ role: 'user', content: eot }] }),
      JSON.stringify({ user: 'u2', model: 'gpt-4o-mini', turns: [eot, 'and <|fim_prefix|> again'] }),
    ]);
    const items = await submitFile([publishedLmeInstance('b2')]);
    await w.startWorker({ CHATQ_TPM: '1000000' });
    expect(await waitForBatch(w.env, lines.batchId)).toMatchObject({ total: 3, succeeded: 3 });
    expect(await waitForBatch(w.env, items.batchId)).toMatchObject({ total: 4, succeeded: 4 });
  });
});
