import type { z } from 'zod';

/**
 * A line's problems as the user reads them: the first zod issue of a line's schema turned into its field and a message
 * that says what was expected and what the line has ("missing (required)" only when the field is absent).
 */

/** A line's problem: the field it is in (dotted path), and what is wrong with it. */
export class LineProblem extends Error {
  constructor(
    readonly field: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** The value as `schema` reads it, or a LineProblem naming the first issue's field and what it got. */
export function check<S extends z.ZodType>(schema: S, value: unknown, fieldPrefix = ''): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.path.map(String).join('.');
  const field = [fieldPrefix, path].filter(Boolean).join('.') || undefined;
  throw new LineProblem(field, issueMessage(issue, valueAt(value, issue.path)));
}

/** The value at a zod issue's path (undefined when absent). */
function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

const kindOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** The types a union of plain types expects ("a string or a number"), or undefined when it is not one. */
function unionOfTypes(issue: z.core.$ZodIssueInvalidUnion): string | undefined {
  const expected = issue.errors.map((branch) =>
    branch.length === 1 && branch[0]!.code === 'invalid_type' && branch[0]!.path.length === 0
      ? branch[0]!.expected
      : undefined,
  );
  return expected.every((e) => e !== undefined) ? expected.map((e) => `a ${e}`).join(' or ') : undefined;
}

/** "missing (required)" only when the field is absent; a field of the wrong type says what it got. */
function issueMessage(issue: z.core.$ZodIssue, value: unknown): string {
  if (issue.code === 'invalid_union') {
    const types = unionOfTypes(issue);
    if (types === undefined) return issue.message;
    return value === undefined ? 'missing (required)' : `expected ${types}, got ${kindOf(value)}`;
  }
  if (issue.code !== 'invalid_type') return issue.message;
  if (value === undefined) return 'missing (required)';
  return issue.message.startsWith('Invalid input')
    ? `expected a ${issue.expected}, got ${kindOf(value)}`
    : issue.message;
}
