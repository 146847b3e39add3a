/** Resolves true when `p` settles within `ms`, false when it has not by then (it goes on, unwatched). */
export const within = (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref()),
  ]);

/** What settledWithin rejects with: nothing answered in time (describeRedisError takes it for Redis away). */
export class NoAnswerError extends Error {}

/** `p`, or a NoAnswerError naming `what` when it has not settled within `ms` (it goes on, unwatched). */
export function settledWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NoAnswerError(`${what} had no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  p.catch(() => undefined);
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
