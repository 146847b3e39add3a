import { z } from 'zod';
import { expectSchema } from '../shared/expectations.js';
import { LIMITS, modelNameSchema } from '../shared/input-limits.js';

/** The three input line formats (the README's "Input: three line formats"). Unknown fields pass through to the chat body. */

const message = z.looseObject({
  role: z.string({ message: 'each message needs a "role" string' }),
});
const messages = z
  .array(message, { message: 'expected an array of {role, content} messages' })
  .min(1, { message: 'needs at least one message' })
  .max(LIMITS.messages, { message: `at most ${LIMITS.messages} messages per line` });

const tokenBound = `expected an integer between 1 and ${LIMITS.maxTokens}`;
const maxTokens = z
  .number({ message: tokenBound })
  .int({ message: tokenBound })
  .min(1, { message: tokenBound })
  .max(LIMITS.maxTokens, { message: tokenBound })
  .optional();
const replyBudget = { max_tokens: maxTokens, max_completion_tokens: maxTokens };

const model = modelNameSchema.optional();
const customId = z
  .string()
  .min(1, { message: 'must be a non-empty string' })
  .max(LIMITS.customIdChars, { message: `at most ${LIMITS.customIdChars} characters` })
  .optional();

const onFailure = z.enum(['continue', 'halt'], { message: 'expected "continue" or "halt"' });
const identity = {
  userid: z.string().max(64, { message: 'expected a UUID v4' }).optional(),
  user: z
    .string()
    .min(1, { message: 'must not be empty' })
    .max(LIMITS.userChars, { message: `at most ${LIMITS.userChars} characters` })
    .optional(),
};
const expect = expectSchema.optional();
/** Labels for pass rates by tag (an evaluation's abilities, a benchmark's question types). */
const tags = z
  .array(
    z
      .string()
      .min(1, { message: 'a tag must not be empty' })
      .max(LIMITS.tagChars, { message: `a tag has at most ${LIMITS.tagChars} characters` }),
    { message: 'expected a list of strings' },
  )
  .max(LIMITS.tags, { message: `at most ${LIMITS.tags} tags` })
  .optional();

export const batchLineSchema = z.object({
  custom_id: customId,
  method: z.literal('POST', { message: 'only POST is supported' }),
  url: z.enum(['/v1/chat/completions', '/chat/completions'], { message: 'only /v1/chat/completions is supported' }),
  body: z.looseObject({ model, messages, ...identity, ...replyBudget }),
  on_failure: onFailure.optional(),
  expect,
  tags,
});

export const chatLineSchema = z.looseObject({
  custom_id: customId,
  model,
  messages,
  ...identity,
  ...replyBudget,
  on_failure: onFailure.optional(),
  expect,
  tags,
});

const turn = z.union([z.string().min(1), z.looseObject({ content: z.string().min(1), expect, tags })], {
  message: 'each turn is a non-empty string or {"content": "...", "expect": ..., "tags": [...]}',
});

export const scriptLineSchema = z.looseObject({
  script_id: z.string().min(1).max(LIMITS.scriptIdChars).optional(),
  model,
  system: z.string().optional(),
  turns: z
    .array(turn)
    .min(1, { message: 'needs at least one turn' })
    .max(LIMITS.turns, { message: `at most ${LIMITS.turns} turns per script` }),
  history: z.enum(['memory', 'full'], { message: 'expected "memory" or "full"' }).default('memory'),
  /** The least time between the end of one turn's call and the start of the next (the endpoint's memory catches up). */
  turn_gap_ms: z
    .number()
    .int()
    .min(0)
    .max(LIMITS.turnGapMs, { message: `at most ${LIMITS.turnGapMs} ms` })
    .optional(),
  ...identity,
  ...replyBudget,
  on_failure: onFailure.optional(),
  tags,
});

/** Fields that belong to chatq, not to the chat body. */
export const CHATQ_FIELDS = [
  'custom_id',
  'userid',
  'user',
  'on_failure',
  'expect',
  'script_id',
  'system',
  'turns',
  'history',
  'turn_gap_ms',
  'tags',
] as const;
