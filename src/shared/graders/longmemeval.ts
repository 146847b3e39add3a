/**
 * LongMemEval (Wu et al., ICLR 2025) as its published code asks and grades, quoted verbatim:
 * - the question, as `src/generation/run_generation.py` of xiaowu0162/LongMemEval (at
 *   283612f4ef546716c0c5c047529d728adb3edba8) ends its answer prompt, the history being the endpoint's memory:
 *   "Current Date: {question_date}\nQuestion: {question}\nAnswer:", at temperature 0 with max_tokens 500;
 * - the grading, as `src/evaluation/evaluate_qa.py` (at f466efe0ea8859251760733cd4c7ad98302b9ddf, the same at
 *   b11ff723381cf41e744c5524be0c52b3a408516c) does: get_anscheck_prompt's prompt for the question's type (or for an
 *   `_abs` id), one user message, temperature 0, max_tokens 10; correct when the judge's answer holds "yes"
 *   (`'yes' in eval_response.lower()`); its judge gpt-4o-2024-08-06 (what print_qa_metrics.py asserts).
 */

/** The judge evaluate_qa.py's results are read with (print_qa_metrics.py asserts it). */
export const LONGMEMEVAL_JUDGE = 'gpt-4o-2024-08-06';

/** The question types, in the order print_qa_metrics.py reports them. */
export const LONGMEMEVAL_TYPES = [
  'single-session-user',
  'single-session-preference',
  'single-session-assistant',
  'multi-session',
  'temporal-reasoning',
  'knowledge-update',
] as const;

/** The question as run_generation.py asks it (its answer prompt's end). */
export const longMemEvalQuestion = (date: string, question: string) =>
  `Current Date: ${date}\nQuestion: ${question}\nAnswer:`;

/** run_generation.py's settings for the answer: temperature 0, max_tokens 500 (gen_length without chain of thought). */
export const LONGMEMEVAL_ANSWER_PARAMS = { temperature: 0, max_tokens: 500 } as const;

const CONTAINS =
  'I will give you a question, a correct answer, and a response from a model. Please answer yes if the response contains the correct answer. Otherwise, answer no. If the response is equivalent to the correct answer or contains all the intermediate steps to get the correct answer, you should also answer yes. If the response only contains a subset of the information required by the answer, answer no. ';
const QUESTION_ANSWER =
  '\n\nQuestion: {}\n\nCorrect Answer: {}\n\nModel Response: {}\n\nIs the model response correct? Answer yes or no only.';

/** get_anscheck_prompt's templates, each filled in order with the question, the answer and the response ("{}"). */
export const LONGMEMEVAL_PROMPTS = {
  default: `${CONTAINS}${QUESTION_ANSWER}`,
  temporal: `${CONTAINS}In addition, do not penalize off-by-one errors for the number of days. If the question asks for the number of days/weeks/months, etc., and the model makes off-by-one errors (e.g., predicting 19 days when the answer is 18), the model's response is still correct. ${QUESTION_ANSWER}`,
  'knowledge-update': `I will give you a question, a correct answer, and a response from a model. Please answer yes if the response contains the correct answer. Otherwise, answer no. If the response contains some previous information along with an updated answer, the response should be considered as correct as long as the updated answer is the required answer.${QUESTION_ANSWER}`,
  preference:
    "I will give you a question, a rubric for desired personalized response, and a response from a model. Please answer yes if the response satisfies the desired response. Otherwise, answer no. The model does not need to reflect all the points in the rubric. The response is correct as long as it recalls and utilizes the user's personal information correctly.\n\nQuestion: {}\n\nRubric: {}\n\nModel Response: {}\n\nIs the model response correct? Answer yes or no only.",
  abstention:
    'I will give you an unanswerable question, an explanation, and a response from a model. Please answer yes if the model correctly identifies the question as unanswerable. The model could say that the information is incomplete, or some other information is given but the asked information is not.\n\nQuestion: {}\n\nExplanation: {}\n\nModel Response: {}\n\nDoes the model correctly identify the question as unanswerable? Answer yes or no only.',
} as const;
export type LongMemEvalPrompt = keyof typeof LONGMEMEVAL_PROMPTS;

/** The prompt of a question type (the three single-fact types share one), or undefined for a type it has none for. */
export function longMemEvalPrompt(type: string, abstention: boolean): LongMemEvalPrompt | undefined {
  if (abstention) return 'abstention';
  if (['single-session-user', 'single-session-assistant', 'multi-session'].includes(type)) return 'default';
  if (type === 'temporal-reasoning') return 'temporal';
  if (type === 'knowledge-update') return 'knowledge-update';
  if (type === 'single-session-preference') return 'preference';
  return undefined;
}

/** Python's str.format of "{}" placeholders, in order (a value's own braces are not read). */
export function formatPositional(template: string, values: string[]): string {
  let i = 0;
  return template.replace(/\{\}/g, () => values[i++] ?? '');
}

/** evaluate_qa.py's call settings for its judge. */
export const LONGMEMEVAL_JUDGE_PARAMS = { n: 1, temperature: 0, max_tokens: 10 } as const;

/** evaluate_qa.py's label: the judge's answer (stripped, lowercased) holds "yes". */
export const longMemEvalLabel = (answer: string) => answer.trim().toLowerCase().includes('yes');
