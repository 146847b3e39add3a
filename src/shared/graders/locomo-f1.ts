import { commonTokens } from './common-tokens.js';
import { porterStem } from './porter-stemmer.js';

/**
 * LoCoMo's QA score (Maharana et al., ACL 2024), as `task_eval/evaluation.py` of snap-research/LoCoMo (at
 * 0e229672277f7ccf36dadc50a744a7800769aad2) computes it without a model: token F1 of the prediction against the
 * answer after its normalisation (commas dropped, lowercased, ASCII punctuation removed, "a", "an", "the", "and"
 * removed, whitespace collapsed) and Porter stemming; by category: 1 (multi-hop) the mean over the answer's
 * comma-separated parts of the best F1 of a prediction's part; 3 (open-domain) scored on the answer's text before ";";
 * 2 and 4 plain F1; 5 (adversarial) 1 when the prediction says "no information available" or "not mentioned", else
 * 0. Each score is kept rounded to 3 places, as that script writes it (`<model>_f1`), and its averages are of those.
 */

/** Python's str.isspace characters: what str.split() and str.strip() take as whitespace. */
const SPACE = '\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SPACES = new RegExp(`[${SPACE}]+`, 'u');
const EDGES = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, 'gu');
/** string.punctuation. */
const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;
/** \b(a|an|the|and)\b, word boundaries as the `regex` module draws them on text (letters, digits, marks, _). */
const ARTICLES = /(?<![\p{L}\p{N}\p{M}_])(?:a|an|the|and)(?![\p{L}\p{N}\p{M}_])/gu;

/** Python's str.strip(). */
export const pyStrip = (s: string) => s.replace(EDGES, '');

/** Python's str.split() with no argument: the runs of non-whitespace. */
export const pySplit = (s: string) => s.split(SPACES).filter((t) => t !== '');

/** evaluation.py's normalize_answer. */
export function normalizeAnswer(s: string): string {
  const text = s.replaceAll(',', '').toLowerCase().replace(PUNCTUATION, '').replace(ARTICLES, ' ');
  return pySplit(text).join(' ');
}

/** evaluation.py's f1_score: token F1 of stemmed, normalised tokens. */
export function f1Score(prediction: string, truth: string): number {
  const predicted = pySplit(normalizeAnswer(prediction)).map(porterStem);
  const expected = pySplit(normalizeAnswer(truth)).map(porterStem);
  const same = commonTokens(predicted, expected);
  if (same === 0) return 0;
  const precision = same / predicted.length;
  const recall = same / expected.length;
  return (2 * precision * recall) / (precision + recall);
}

/** evaluation.py's f1 (multi-hop): the mean over the answer's comma-separated parts of the best part's F1. */
export function multiAnswerF1(prediction: string, truth: string): number {
  const predictions = prediction.split(',').map(pyStrip);
  const truths = truth.split(',').map(pyStrip);
  let sum = 0;
  for (const t of truths) sum += Math.max(...predictions.map((p) => f1Score(p, t)));
  return sum / truths.length;
}

/** LoCoMo's QA categories, as its evaluation code numbers them. */
export const LOCOMO_CATEGORIES = {
  1: 'multi-hop',
  2: 'temporal',
  3: 'open-domain',
  4: 'single-hop',
  5: 'adversarial',
} as const;
export type LocomoCategory = keyof typeof LOCOMO_CATEGORIES;

/** One question's score, as eval_question_answering gives it (unrounded). */
export function locomoF1(prediction: string, answer: string, category: LocomoCategory): number {
  if (category === 5) {
    const p = prediction.toLowerCase();
    return p.includes('no information available') || p.includes('not mentioned') ? 1 : 0;
  }
  if (category === 1) return multiAnswerF1(prediction, answer);
  return f1Score(prediction, category === 3 ? pyStrip(answer.split(';')[0]!) : answer);
}

/**
 * Python's round(x, digits): to the nearest, ties to even, on the float's exact value (Number#toFixed rounds ties
 * away from zero). LoCoMo's script writes each score this way. A tie is a value whose exact decimal expansion ends
 * in a 5 right after the kept digits: such a value has few digits, and 25 more show it whole.
 */
export function pyRound(x: number, digits: number): number {
  if (!Number.isFinite(x)) return x;
  const [whole, fraction = ''] = Math.abs(x)
    .toFixed(digits + 25)
    .split('.');
  if (!/^50*$/.test(fraction.slice(digits))) return Number(x.toFixed(digits));
  const kept = BigInt(whole! + fraction.slice(0, digits));
  const even = kept % 2n === 0n ? kept : kept + 1n;
  return (Math.sign(x) * Number(even)) / 10 ** digits;
}
