/**
 * The LLM-judge score J of the Mem0 paper (Chhikara et al., 2025) for LoCoMo, as mem0ai/mem0's
 * `evaluation/metrics/llm_judge.py` computes it (the last commit with that folder, b3ede5b7c0ac0e847b03786a603c107ac943b3ee;
 * the file as last changed at 2352a44193bd0e36cd544fc5664cbee14e020bc2): its ACCURACY_PROMPT, quoted verbatim, as
 * one user message to gpt-4o-mini with response_format json_object at temperature 0; the answer is right when
 * json.loads(extract_json(reply))["label"] is "CORRECT" (extract_json: the text of a ``` fence, if any, else all
 * of it). Category 5 (adversarial) is left out, as its evals.py leaves it out.
 */

export const MEM0_JUDGE = 'gpt-4o-mini';

export const MEM0_PROMPT = `
Your task is to label an answer to a question as ’CORRECT’ or ’WRONG’. You will be given the following data:
    (1) a question (posed by one user to another user), 
    (2) a ’gold’ (ground truth) answer, 
    (3) a generated answer
which you will score as CORRECT/WRONG.

The point of the question is to ask about something one user should know about the other user based on their prior conversations.
The gold answer will usually be a concise and short answer that includes the referenced topic, for example:
Question: Do you remember what I got the last time I went to Hawaii?
Gold answer: A shell necklace
The generated answer might be much longer, but you should be generous with your grading - as long as it touches on the same topic as the gold answer, it should be counted as CORRECT. 

For time related questions, the gold answer will be a specific date, month, year, etc. The generated answer might be much longer or use relative time references (like "last Tuesday" or "next month"), but you should be generous with your grading - as long as it refers to the same date or time period as the gold answer, it should be counted as CORRECT. Even if the format differs (e.g., "May 7th" vs "7 May"), consider it CORRECT if it's the same date.

Now it's time for the real question:
Question: {question}
Gold answer: {gold_answer}
Generated answer: {generated_answer}

First, provide a short (one sentence) explanation of your reasoning, then finish with CORRECT or WRONG. 
Do NOT include both CORRECT and WRONG in your response, or it will break the evaluation script.

Just return the label CORRECT or WRONG in a json format with the key as "label".
`;

/** llm_judge.py's call settings. */
export const MEM0_JUDGE_PARAMS = { response_format: { type: 'json_object' }, temperature: 0 } as const;

/** The prompt with its three fields filled (str.format by name, in one pass). */
export const mem0Prompt = (question: string, gold: string, generated: string) =>
  MEM0_PROMPT.replace(
    /\{(question|gold_answer|generated_answer)\}/g,
    (_, f: string) => ({ question, gold_answer: gold, generated_answer: generated })[f]!,
  );

/** mem0's extract_json: the text inside the first ``` fence (after an optional "json"), trimmed; else all of it. */
function extractJson(text: string): string {
  const open = text.indexOf('```');
  if (open < 0) return text;
  let from = open + 3;
  if (text.startsWith('json', from)) from += 4;
  const close = text.indexOf('```', from);
  return close < 0 ? text : text.slice(from, close).trim();
}

/** llm_judge.py's label: "CORRECT", another label (wrong), or undefined when the reply holds no JSON label. */
export function mem0Label(reply: string): boolean | undefined {
  let value: unknown;
  try {
    value = JSON.parse(extractJson(reply.trim()));
  } catch {
    return undefined;
  }
  const label = value && typeof value === 'object' ? (value as { label?: unknown }).label : undefined;
  return typeof label === 'string' ? label === 'CORRECT' : undefined;
}
