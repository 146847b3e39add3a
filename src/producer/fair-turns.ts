/**
 * Turns at a shared resource, given out project by project: at most `limit` held at once, and when one is free it
 * goes to the project that waits next in round-robin order (each project's own waiters in order). The imports of a
 * process take turns so to write their chunks: a project importing many large files gets no more of the importer's
 * Redis connection than one importing a line.
 */
export class FairTurns {
  private held = 0;
  /** Waiting projects in round-robin order, each with its waiters. */
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(private readonly limit: number) {}

  /** Waits for a turn; call the function it gives back when done with it. */
  async turn(project: string): Promise<() => void> {
    if (this.held < this.limit && this.waiting.size === 0) {
      this.held += 1;
      return () => this.release();
    }
    await new Promise<void>((resolve) => {
      const queue = this.waiting.get(project);
      if (queue) queue.push(resolve);
      else this.waiting.set(project, [resolve]);
    });
    return () => this.release();
  }

  private release(): void {
    const next = this.waiting.entries().next();
    if (next.done) {
      this.held -= 1;
      return;
    }
    const [project, queue] = next.value;
    const resolve = queue.shift()!;
    // The project goes to the back of the round.
    this.waiting.delete(project);
    if (queue.length) this.waiting.set(project, queue);
    resolve();
  }
}
