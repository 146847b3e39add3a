import type { z } from 'zod';
import { ApiError } from './api-errors.js';

/** Validates request input at the edge; the first problem becomes a 400 naming the field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.path.map(String).join('.') || null;
  throw new ApiError(400, param ? `${param}: ${issue.message}` : issue.message, 'invalid_request', param);
}
