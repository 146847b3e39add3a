import { z } from 'zod';
import { GRADERS, type Grader } from '../graders/judges.js';

/**
 * How a batch made over HTTP is graded, from its metadata (as `--judge-model`, `--grader` and `--judge-adversarial` say
 * it on the command line): `judge_model`, `grader` (one of GRADERS, or "none") and `judge_adversarial` ("true").
 */
export interface GradingOptions {
  judgeModel?: string;
  benchmark?: { grader?: Grader | 'none'; judgeAdversarial?: boolean };
}

export const gradingMetadataSchema = z.object({
  grader: z
    .enum([...GRADERS, 'none'], { message: `metadata.grader: expected one of ${[...GRADERS, 'none'].join(', ')}` })
    .optional(),
  judge_adversarial: z
    .enum(['true', 'false'], { message: 'metadata.judge_adversarial: expected "true" or "false"' })
    .optional(),
});

/** The grading options a batch's metadata names (checked when the batch is made: what it holds is valid). */
export function gradingOptionsOf(metadata: Record<string, string>): GradingOptions {
  const { grader, judge_adversarial } = gradingMetadataSchema.parse(metadata);
  return {
    ...(metadata.judge_model ? { judgeModel: metadata.judge_model } : {}),
    benchmark: { ...(grader ? { grader } : {}), ...(judge_adversarial === 'true' ? { judgeAdversarial: true } : {}) },
  };
}
