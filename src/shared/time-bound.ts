/** Resolves true when `p` settles within `ms`, false when it has not by then (it goes on, unwatched). */
export const within = (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref()),
  ]);
