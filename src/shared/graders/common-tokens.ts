/** How many tokens two lists share, each counted as often as both hold it: Python's sum((Counter(a) & Counter(b)).values()). */
export function commonTokens(a: readonly string[], b: readonly string[]): number {
  const left = new Map<string, number>();
  for (const t of b) left.set(t, (left.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of a) {
    const n = left.get(t) ?? 0;
    if (n > 0) {
      same += 1;
      left.set(t, n - 1);
    }
  }
  return same;
}
