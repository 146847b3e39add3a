/**
 * Timers that all end at once when the worker stops. One set of resolvers instead of an AbortSignal listener per
 * waiting call (which, past ten waiting calls, is Node's MaxListenersExceededWarning).
 */
export class StoppableWaits {
  private readonly pending = new Set<() => void>();
  private done = false;

  get stopped(): boolean {
    return this.done;
  }

  wait(ms: number): Promise<void> {
    if (this.done) return Promise.resolve();
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.pending.delete(end);
        resolve();
      };
      const timer = setTimeout(end, ms);
      this.pending.add(end);
    });
  }

  stop(): void {
    this.done = true;
    for (const end of [...this.pending]) end();
  }
}
