import { commonTokens } from './common-tokens.js';
import { wordTokenize } from './word-tokenize.js';

/**
 * BLEU-1 as the Mem0 paper reports it for LoCoMo (mem0ai/mem0 `evaluation/metrics/utils.py`,
 * calculate_bleu_scores, at b3ede5b7c0ac0e847b03786a603c107ac943b3ee): NLTK's sentence_bleu of the lowercased,
 * word-tokenized prediction against the answer, weights (1, 0, 0, 0), SmoothingFunction().method1. With those weights
 * it is the brevity penalty times the clipped unigram precision, 0 when no unigram matches.
 */
export function bleu1(prediction: string, reference: string): number {
  const hypothesis = wordTokenize(prediction.toLowerCase());
  const ref = wordTokenize(reference.toLowerCase());
  const matched = commonTokens(hypothesis, ref);
  if (matched === 0) return 0;
  const precision = matched / Math.max(1, hypothesis.length);
  const c = hypothesis.length;
  const r = ref.length;
  const brevity = c > r ? 1 : Math.exp(1 - r / c);
  // As NLTK computes it: exp of the weighted sum of logs (the zero-weighted precisions add nothing).
  return brevity * Math.exp(Math.log(precision));
}
