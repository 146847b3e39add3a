/** A sliding-window log of (time, amount): the sum over the last `windowMs`, and the largest sum ever seen. */
export class SlidingWindow {
  private readonly times: number[] = [];
  private readonly amounts: number[] = [];
  private head = 0;
  private sum = 0;
  peak = 0;

  constructor(private readonly windowMs: number) {}

  private evict(now: number): void {
    while (this.head < this.times.length && this.times[this.head]! <= now - this.windowMs) {
      this.sum -= this.amounts[this.head]!;
      this.head += 1;
    }
    if (this.head > 4096 && this.head * 2 > this.times.length) {
      this.times.splice(0, this.head);
      this.amounts.splice(0, this.head);
      this.head = 0;
    }
  }

  total(now: number): number {
    this.evict(now);
    return this.sum;
  }

  add(now: number, amount: number): void {
    this.evict(now);
    this.times.push(now);
    this.amounts.push(amount);
    this.sum += amount;
    this.peak = Math.max(this.peak, this.sum);
  }

  /** Milliseconds until `amount` more would fit under `limit`. */
  waitFor(now: number, amount: number, limit: number): number {
    this.evict(now);
    let excess = this.sum + amount - limit;
    for (let i = this.head; i < this.times.length && excess > 0; i++) {
      excess -= this.amounts[i]!;
      if (excess <= 0) return Math.max(1, this.times[i]! + this.windowMs - now);
    }
    return this.windowMs;
  }
}
