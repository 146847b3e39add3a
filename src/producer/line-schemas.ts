import { z } from 'zod';
import { expectSchema } from '../shared/expectations.js';

/** The three input line formats (see DESIGN.md "Input formats"). Unknown fields pass through to the chat body. */

const message = z.looseObject({
  role: z.string({ message: 'each message needs a "role" string' }),
});
const messages = z.array(message, { message: 'expected an array of {role, content} messages' }).min(1, { message: 'needs at least one message' });

const onFailure = z.enum(['continue', 'halt'], { message: 'expected "continue" or "halt"' });
const identity = {
  userid: z.string().optional(),
  user: z.string().min(1, { message: 'must not be empty' }).optional(),
};
const expect = expectSchema.optional();

export const batchLineSchema = z.object({
  custom_id: z.string().min(1, { message: 'must be a non-empty string' }).max(512).optional(),
  method: z.literal('POST', { message: 'only POST is supported' }),
  url: z.enum(['/v1/chat/completions', '/chat/completions'], { message: 'only /v1/chat/completions is supported' }),
  body: z.looseObject({ model: z.string().min(1).optional(), messages, ...identity }),
  on_failure: onFailure.optional(),
  expect,
});

export const chatLineSchema = z.looseObject({
  custom_id: z.string().min(1, { message: 'must be a non-empty string' }).max(512).optional(),
  model: z.string().min(1).optional(),
  messages,
  ...identity,
  on_failure: onFailure.optional(),
  expect,
});

const turn = z.union([z.string().min(1), z.looseObject({ content: z.string().min(1), expect })], {
  message: 'each turn is a non-empty string or {"content": "...", "expect": ...}',
});

export const scriptLineSchema = z.looseObject({
  script_id: z.string().min(1).max(400).optional(),
  model: z.string().min(1).optional(),
  system: z.string().optional(),
  turns: z.array(turn).min(1, { message: 'needs at least one turn' }),
  history: z.enum(['memory', 'full'], { message: 'expected "memory" or "full"' }).default('memory'),
  ...identity,
  on_failure: onFailure.optional(),
});

/** Fields that belong to chatq, not to the chat body. */
export const CHATQ_FIELDS = ['custom_id', 'userid', 'user', 'on_failure', 'expect', 'script_id', 'system', 'turns', 'history'] as const;
