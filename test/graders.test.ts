import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bleu1 } from '../src/shared/graders/bleu1.js';
import { gradingCall, gradingVerdict } from '../src/shared/graders/judges.js';
import { locomoPrediction, locomoQuestion } from '../src/shared/graders/locomo.js';
import { type LocomoCategory, locomoF1, pyRound } from '../src/shared/graders/locomo-f1.js';
import { porterStem } from '../src/shared/graders/porter-stemmer.js';

/**
 * The published graders, against the published code's own output, run here with Debian's python3, python3-nltk
 * (3.8) and python3-regex (test/fixtures/, written by that run; the scorers' code is not in this repository):
 * - official-prompts.json: the prompts LongMemEval's evaluate_qa.py (get_anscheck_prompt), Mem0's llm_judge.py
 *   (ACCURACY_PROMPT.format) and LoCoMo's gpt_utils.py (QA_PROMPT, QA_PROMPT_CAT_5) build for the same inputs;
 * - locomo-scores.json: LoCoMo's evaluation.py (eval_question_answering's per-category rule, f1_score, f1) and
 *   Mem0's calculate_bleu_scores (bleu1) on 39 prediction/answer pairs;
 * - porter-nltk.json: NLTK's PorterStemmer().stem on 470 words.
 */
const fixture = (name: string) => JSON.parse(readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8'));

describe('the published graders, as their code grades', () => {
  const official = fixture('official-prompts.json');

  it("LongMemEval's judge prompt for each question type and for _abs ids, its settings and its yes rule", () => {
    const kinds: Record<string, 'default' | 'temporal' | 'knowledge-update' | 'preference'> = {
      'single-session-user': 'default',
      'single-session-assistant': 'default',
      'multi-session': 'default',
      'temporal-reasoning': 'temporal',
      'knowledge-update': 'knowledge-update',
      'single-session-preference': 'preference',
    };
    for (const c of official.longmemeval as { task: string; abstention: boolean; prompt: string }[]) {
      const kind = c.abstention ? 'abstention' : kinds[c.task]!;
      const answer = c.abstention ? '42' : 'Ada {0}';
      const input =
        kind === 'preference'
          ? { question: 'What is {my} name?', answer: '', rubric: answer, reply: 'It is "Ada"\n(reply 3)' }
          : { question: 'What is {my} name?', answer, rubric: '', reply: 'It is "Ada"\n(reply 3)' };
      const call = gradingCall('longmemeval', kind, input, 'gpt-4o-2024-08-06');
      expect(call.messages).toEqual([{ role: 'user', content: c.prompt }]);
      expect(call.params).toEqual({ n: 1, temperature: 0, max_tokens: 10 });
    }
    expect(gradingVerdict('longmemeval', ' Yes.')).toMatchObject({ pass: true });
    expect(gradingVerdict('longmemeval', 'No, it does not.')).toMatchObject({ pass: false });
    expect(gradingVerdict('longmemeval', null)).toBeNull();
  });

  it("Mem0's judge prompt, its settings, and its label (the text of a fence, else all of it)", () => {
    const call = gradingCall(
      'mem0',
      'default',
      { question: 'When did she go {there}?', answer: '7 May 2023', rubric: '', reply: 'On "May 7th".' },
      'gpt-4o-mini',
    );
    expect(call.messages).toEqual([{ role: 'user', content: official.mem0 }]);
    expect(call.params).toEqual({ response_format: { type: 'json_object' }, temperature: 0 });
    expect(gradingVerdict('mem0', '{"label": "CORRECT"}')).toMatchObject({ pass: true });
    expect(gradingVerdict('mem0', 'Sure:\n```json\n{"label": "WRONG"}\n```')).toMatchObject({ pass: false });
    expect(gradingVerdict('mem0', 'It is CORRECT')).toBeNull();
  });

  it("LoCoMo's questions as its harness asks them, and a category-5 choice read as the option it names", () => {
    expect(locomoQuestion('What did Melanie run?', 4, '', 'x').prompt).toBe(official.locomo.cat4);
    expect(locomoQuestion('When did Caroline paint a sunrise?', 2, '', 'x').prompt).toBe(official.locomo.cat2);
    // The order of the options is drawn from the sample and the question: this one puts "Not mentioned" first.
    const five = locomoQuestion('What did Caroline realize?', 5, 'self-care is important', 'conv-7/0');
    expect(five.options).toEqual({ a: 'Not mentioned in the conversation', b: 'self-care is important' });
    expect(five.prompt).toBe(official.locomo.cat5);
    expect(locomoPrediction(' (a) ', five.options)).toBe('Not mentioned in the conversation');
    expect(locomoPrediction('B', five.options)).toBe('self-care is important');
    expect(locomoPrediction('It was Never Said', five.options)).toBe('it was never said');
    expect(locomoPrediction('  Paris \n', undefined)).toBe('Paris');
  });

  it("LoCoMo's F1 (its normalisation, stemming and category rules, rounded as it writes them) and Mem0's BLEU-1, on 39 pairs", () => {
    const pairs = fixture('locomo-scores.json') as {
      prediction: string;
      answer: string | number;
      category: LocomoCategory;
      f1: number;
      f1_rounded: number;
      b1: number;
    }[];
    expect(pairs).toHaveLength(39);
    for (const p of pairs) {
      const f1 = locomoF1(p.prediction, String(p.answer), p.category);
      expect({ p: p.prediction, f1, rounded: pyRound(f1, 3), b1: bleu1(p.prediction, String(p.answer)) }).toEqual({
        p: p.prediction,
        f1: p.f1,
        rounded: p.f1_rounded,
        b1: p.b1,
      });
    }
    // Python's round: ties to even on the exact value (toFixed rounds them up).
    expect([0.0625, 0.1875, 0.5625, 0.6665].map((x) => pyRound(x, 3))).toEqual([0.062, 0.188, 0.562, 0.666]);
  });

  it("stems as NLTK's PorterStemmer does, on 470 words", () => {
    const words = fixture('porter-nltk.json') as Record<string, string>;
    expect(Object.keys(words).length).toBeGreaterThan(400);
    expect(Object.fromEntries(Object.keys(words).map((w) => [w, porterStem(w)]))).toEqual(words);
    // A word of many y's alternates without recursion.
    expect(porterStem('y'.repeat(100_000))).toHaveLength(100_000);
  });
});
