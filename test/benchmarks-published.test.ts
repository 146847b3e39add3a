import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { parseInput } from '../src/producer/parse-input.js';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { gradingCall, gradingVerdict } from '../src/shared/graders/judges.js';
import { LONGMEMEVAL_TYPES } from '../src/shared/graders/longmemeval.js';
import type { LocomoReport, LongMemEvalReport } from '../src/shared/reports/benchmark-report.js';
import { judgeReply } from '../src/simulator/judge-replies.js';
import { publishedLmeInstance, publishedLocomoSample } from './helpers/benchmark-files.js';
import { useApi, useWorld } from './helpers/in-process-worker.js';
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

/** A LongMemEval file of every question type, an _abs one among them, as the published files are. */
const everyType = () => {
  const types = [
    ['single-session-user', 'What is the name of my beagle?', 'Biscuit', 'My beagle has the name Biscuit.'],
    [
      'single-session-assistant',
      'Which podcast did you recommend?',
      'Hardcore History',
      'I recommend Hardcore History.',
    ],
    ['multi-session', 'How many books did I buy?', '3', 'I bought two novels today.'],
    ['temporal-reasoning', 'When did I start running?', 'May 2023', 'I started running in May 2023.'],
    ['knowledge-update', 'Where is my gym?', 'Pine Street', 'My gym is now on Pine Street.'],
    [
      'single-session-preference',
      'Can you suggest a dinner?',
      'The user prefers vegetarian food',
      'I only eat vegetarian food.',
    ],
  ];
  return types.map(([type, question, answer, said], i) => ({
    ...publishedLmeInstance(`q${i}${i === 2 ? '_abs' : ''}`),
    question_type: type,
    question,
    answer,
    haystack_sessions: [
      [
        { role: 'user', content: said, has_answer: true },
        { role: 'assistant', content: 'Noted!' },
      ],
    ],
    haystack_dates: ['2023/05/20 (Sat) 10:02'],
    haystack_session_ids: [`answer_q${i}`],
  }));
};

describe("reports in the papers' shape, and answers the official scorers read", () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: 'tok-reports' });
  const submitFile = (items: unknown[], opts: Record<string, unknown> = {}) =>
    w.env.submit([JSON.stringify(items)], { source: 'bench.json', defaultModel: 'gpt-4o-mini', ...opts });
  const get = (path: string) => fetch(`${a.api.url}${path}`, { headers: { authorization: 'Bearer tok-reports' } });

  it('LongMemEval: accuracy by type, task-averaged, overall and abstention, as print_qa_metrics.py computes them from the answers chatq exports', async () => {
    const file = everyType();
    const run = await submitFile(file);
    await w.startWorker();
    await waitForBatch(w.env, run.batchId);
    const report = (await (await get(`/v1/batches/${run.batchId}/benchmark`)).json()) as LongMemEvalReport;
    expect(report).toMatchObject({ benchmark: 'longmemeval', judges: ['gpt-4o-2024-08-06'], questions: 6 });
    expect(report.types.map((t) => t.type)).toEqual([...LONGMEMEVAL_TYPES]);
    const answers = await (await get(`/v1/batches/${run.batchId}/benchmark/answers`)).text();
    const lines = answers
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.question_id)).toEqual(file.map((x) => x.question_id));
    for (const l of lines) expect(l.autoeval_label).toEqual({ model: 'gpt-4o-2024-08-06', label: expect.any(Boolean) });
    // print_qa_metrics.py's arithmetic on those lines and the reference file.
    const byType = new Map<string, number[]>(LONGMEMEVAL_TYPES.map((t) => [t, []]));
    for (const l of lines)
      byType
        .get(file.find((x) => x.question_id === l.question_id)!.question_type!)!
        .push(l.autoeval_label.label ? 1 : 0);
    const mean = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
    for (const t of report.types) expect(t.mean).toBe(mean(byType.get(t.type)!));
    expect(report.taskAveraged).toBe(mean([...byType.values()].map(mean)));
    expect(report.overall.mean).toBe(mean([...byType.values()].flat()));
    expect(report.abstention).toMatchObject({
      count: 1,
      mean: lines.find((l) => l.question_id.includes('_abs')).autoeval_label.label ? 1 : 0,
    });
    // The simulator answers from what it was told: the single-fact questions are right.
    expect(report.types.find((t) => t.type === 'single-session-user')!.mean).toBe(1);
    // `chatq eval` prints the same table; `chatq results --format longmemeval` writes the same lines.
    const evalOut = await runCli(['eval', run.batchId], w.env.env());
    expect(evalOut.stdout).toContain('LongMemEval, judged by gpt-4o-2024-08-06');
    expect(evalOut.stdout).toMatch(new RegExp(`task-averaged +${report.taskAveraged!.toFixed(4)}\n`));
    expect(evalOut.stdout).toMatch(new RegExp(`overall +6 +${report.overall.mean!.toFixed(4)}\n`));
    const exported = await runCli(['results', run.batchId, '--format', 'longmemeval'], w.env.env());
    expect(exported.stdout).toBe(answers);
  });

  it('LoCoMo: F1, B1 and J by category and overall; the published sample file with each prediction and its F1', async () => {
    const sample = publishedLocomoSample();
    const run = await submitFile([sample]);
    await w.startWorker();
    await waitForBatch(w.env, run.batchId);
    const report = (await (await get(`/v1/batches/${run.batchId}/benchmark`)).json()) as LocomoReport;
    expect(report).toMatchObject({ benchmark: 'locomo', judges: ['gpt-4o-mini'], questions: 4, unanswered: 0 });
    expect(report.categories.map((c) => [c.category, c.name, c.f1.count, c.j.count])).toEqual([
      [2, 'temporal', 1, 1],
      [4, 'single-hop', 1, 1],
      // Category 5 is not judged (Mem0's J leaves it out), and has no BLEU-1.
      [5, 'adversarial', 2, 0],
    ]);
    expect(report.categories.find((c) => c.category === 5)!.b1.count).toBe(0);
    const file = JSON.parse(await (await get(`/v1/batches/${run.batchId}/benchmark/answers`)).text());
    expect(file).toHaveLength(1);
    expect(file[0].sample_id).toBe('conv-7');
    expect(file[0].qa).toHaveLength(4);
    file[0].qa.forEach((qa: Record<string, unknown>, i: number) => {
      const { sample_id: _, ...published } = { sample_id: 0, ...sample.qa[i] };
      expect(qa).toMatchObject(published);
      expect(qa).toHaveProperty('gpt-4o-mini_prediction');
      expect(qa).toHaveProperty('gpt-4o-mini_f1');
      expect(qa.category_name).toBe({ 2: 'Temporal', 4: 'Single-hop', 5: 'Adversarial' }[qa.category as number]);
    });
    // evaluation_stats.py's arithmetic: the sum of each category's F1 over its count; overall over all questions.
    const f1s = file[0].qa.map((qa: Record<string, number>) => qa['gpt-4o-mini_f1']!);
    expect(report.overall.f1.mean).toBe(f1s.reduce((p: number, q: number) => p + q, 0) / 4);
    const out = await runCli(['eval', run.batchId, '--format', 'csv'], w.env.env());
    expect(out.stdout.split('\n')[0]).toBe('category,questions,F1,B1,J (judged)');
  });

  it('judges category 5 with --judge-adversarial, each against its own answer: the two items whose answer is "No" pass a reply that says no', async () => {
    const opts = { source: 'l.json', defaultModel: 'gpt-4o-mini', runSalt: 's', benchmark: { judgeAdversarial: true } };
    const drafts = [];
    for await (const p of parseInput(Readable.from([JSON.stringify([publishedLocomoSample()])]), opts))
      if (p.ok) drafts.push(...p.drafts);
    const judges = drafts.flatMap((d) =>
      (Array.isArray(d.expect) ? d.expect : []).flatMap((e) => (e.judge ? [e.judge] : [])),
    );
    expect(judges.map((j) => j.answer)).toEqual(['2022', 'a charity race', 'Not mentioned in the conversation', 'No']);
    const no = judges[3]!;
    const call = gradingCall(
      'mem0',
      'adversarial',
      { question: no.question, answer: no.answer, rubric: '', reply: 'No.' },
      'gpt-4o-mini',
    );
    expect(gradingVerdict('mem0', judgeReply(call.messages)!)).toMatchObject({ pass: true });
  });
});
