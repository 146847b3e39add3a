/**
 * A batch's completion_window: how long it may take before what is not done ends "expired" (OpenAI's semantics).
 * OpenAI accepts "24h" only; chatq accepts any whole number of seconds, minutes, hours or days up to 30 days.
 */
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export const MAX_COMPLETION_WINDOW_MS = 30 * UNIT_MS.d;
/** The window of a batch made over the API without one (OpenAI's only value). */
export const API_COMPLETION_WINDOW = '24h';

export type CompletionWindow = { text: string; ms: number };

/** The window a text names, or an error message saying what to write instead. */
export function parseCompletionWindow(text: string): CompletionWindow | { error: string } {
  const m = /^(\d{1,7})([smhd])$/.exec(text);
  const ms = m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : 0;
  if (!m || ms < UNIT_MS.s || ms > MAX_COMPLETION_WINDOW_MS) {
    return { error: `expected a duration from 1s to 30d such as "24h", "90m" or "7d", got "${text.slice(0, 40)}"` };
  }
  return { text, ms };
}
