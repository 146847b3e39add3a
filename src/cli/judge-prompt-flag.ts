import { readFileSync, statSync } from 'node:fs';
import { judgeTemplateSchema } from '../shared/expectations.js';
import { LIMITS } from '../shared/input-limits.js';
import { unreadable } from '../shared/readable-file.js';
import { UsageError } from './cli-context.js';

/** `--judge-prompt FILE`, read: a template with {{reply}}, bounded before it is read; a usage error (exit 2) else. */
export function judgePromptFlag(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const why = unreadable(path);
  if (why) throw new UsageError(`--judge-prompt ${path}: ${why}`);
  const refused = new UsageError(
    `--judge-prompt ${path}: expected a template of at most ${LIMITS.judgeChars} characters with {{reply}} in it once (and {{question}}, {{answer}}, {{rubric}} at most once each, as it needs)`,
  );
  // A character is at most 4 bytes of UTF-8.
  if (statSync(path).size > LIMITS.judgeChars * 4) throw refused;
  const prompt = readFileSync(path, 'utf8');
  if (!judgeTemplateSchema.safeParse(prompt).success) throw refused;
  return prompt;
}
