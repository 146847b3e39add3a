import { createHash } from 'node:crypto';
import { type LocomoCategory, pyStrip } from './locomo-f1.js';

/**
 * LoCoMo's questions as its harness asks them (snap-research/LoCoMo `task_eval/gpt_utils.py`, get_gpt_answers with
 * batch size 1, at 0e229672277f7ccf36dadc50a744a7800769aad2), quoted verbatim, the conversation being the endpoint's
 * memory: QA_PROMPT around the question (category 2 with its hint to use the conversation's dates); category 5 with
 * QA_PROMPT_CAT_5 and the choice between "Not mentioned in the conversation" and the item's answer (its "answer",
 * else its "adversarial_answer"), the order drawn per question (LoCoMo draws it with random(); chatq from the sample
 * and the question, so a run can be repeated); 32 tokens at temperature 0; the prediction the reply stripped, a
 * category-5 reply of "a", "b", "(a)" or "(b)" read as the option it names (get_cat_5_answer).
 */

export const LOCOMO_QA_PROMPT = `
Based on the above context, write an answer in the form of a short phrase for the following question. Answer with exact words from the context whenever possible.

Question: {} Short answer:
`;

export const LOCOMO_QA_PROMPT_CAT_5 = `
Based on the above context, answer the following question.

Question: {} Short answer:
`;

const TEMPORAL_HINT = ' Use DATE of CONVERSATION to answer with an approximate date.';
const NOT_MENTIONED = 'Not mentioned in the conversation';

/** get_gpt_answers' settings: 32 tokens (num_tokens_request), temperature 0. */
export const LOCOMO_ANSWER_PARAMS = { temperature: 0, max_tokens: 32 } as const;

/** A category-5 question's two options. */
export interface LocomoOptions {
  a: string;
  b: string;
}

/** A question's text as asked, and (category 5) its options. */
export function locomoQuestion(
  question: string,
  category: LocomoCategory,
  adversarialAnswer: string,
  drawnFrom: string,
): { prompt: string; options?: LocomoOptions } {
  if (category === 2) return { prompt: fill(LOCOMO_QA_PROMPT, `${question}${TEMPORAL_HINT}`) };
  if (category !== 5) return { prompt: fill(LOCOMO_QA_PROMPT, question) };
  // random() < 0.5 puts "Not mentioned" first.
  const notMentionedFirst = (createHash('sha256').update(drawnFrom).digest()[0]! & 1) === 0;
  const options = notMentionedFirst
    ? { a: NOT_MENTIONED, b: adversarialAnswer }
    : { a: adversarialAnswer, b: NOT_MENTIONED };
  const asked = `${question} Select the correct answer: (a) ${options.a} (b) ${options.b}. `;
  return { prompt: fill(LOCOMO_QA_PROMPT_CAT_5, asked), options };
}

const fill = (template: string, question: string) => template.replace('{}', () => question);

/** The prediction a reply stands for: stripped, and a category-5 choice read as its option (get_cat_5_answer). */
export function locomoPrediction(reply: string, options: LocomoOptions | undefined): string {
  const stripped = pyStrip(reply);
  if (!options) return stripped;
  // get_cat_5_answer lowercases what it reads; its length counts characters.
  const choice = stripped.toLowerCase();
  const length = [...choice].length;
  if (length === 1) return pyStrip(choice.includes('a') ? options.a : options.b);
  if (length === 3) return pyStrip(choice.includes('(a)') ? options.a : options.b);
  return choice;
}
