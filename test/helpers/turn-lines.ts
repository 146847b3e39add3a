import type { Simulator } from '../../src/simulator/simulator-server.js';

const SEQ = /\[seq (\d+)\]/;

/** `users` users × `turns` turns as chat lines, turn by turn, each marked "[seq N]" (the simulator checks the order). */
export const turnLines = (users: number, turns: number, tag: string) =>
  Array.from({ length: users * turns }, (_, i) =>
    JSON.stringify({
      custom_id: `${tag}-${i}`,
      user: `${tag}-u${i % users}`,
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: `[seq ${Math.floor(i / users)}] hi` }],
    }),
  );

/** Calls of a turn the upstream had seen already, and when the last of them came after `since`. */
export function repeatedCalls(sim: Simulator, since = 0): { repeats: number; lastRepeatAfterMs: number | null } {
  let count = 0;
  let last: number | null = null;
  for (const u of Object.values(sim.stats().users)) {
    const seen = new Set<string>();
    u.arrivals.forEach((text, i) => {
      const seq = SEQ.exec(text)![1]!;
      if (seen.has(seq)) {
        count += 1;
        last = Math.max(last ?? 0, u.arrivedAt[i]! - since);
      }
      seen.add(seq);
    });
  }
  return { repeats: count, lastRepeatAfterMs: last };
}
