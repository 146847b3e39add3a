import { formatUsd } from '../shared/usage/pricing.js';
import { formatCount, formatDuration, formatTokens } from '../shared/display-format.js';

export interface ProgressFigures {
  done: number;
  total: number;
  failed: number;
  tokens: number;
  costNano: number;
}

/**
 * One line of progress on stderr: bar, counts, rate, tokens, cost, ETA. Redrawn in place on a terminal;
 * elsewhere (CI, pipes) printed as a plain line every few seconds.
 */
export class ProgressBar {
  private readonly started = Date.now();
  private lastPlain = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly plainEveryMs = 5_000,
  ) {}

  render(f: ProgressFigures, width = 24): string {
    const elapsed = Math.max(1, Date.now() - this.started);
    const ratio = f.total > 0 ? Math.min(1, f.done / f.total) : 0;
    const filled = Math.round(ratio * width);
    const rate = (f.done * 1000) / elapsed;
    const eta = rate > 0 ? ((f.total - f.done) / rate) * 1000 : Number.NaN;
    return [
      `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`,
      `${formatCount(f.done)}/${formatCount(f.total)}`,
      `${(ratio * 100).toFixed(0)}%`,
      f.failed ? `${formatCount(f.failed)} failed` : null,
      `${rate.toFixed(1)} req/s`,
      `${formatTokens(f.tokens)} tok`,
      formatUsd(f.costNano),
      f.done >= f.total ? `in ${formatDuration(elapsed)}` : `ETA ${formatDuration(eta)}`,
    ]
      .filter(Boolean)
      .join('  ');
  }

  update(f: ProgressFigures): void {
    if (this.stream.isTTY) {
      this.stream.write(`\r${this.render(f, Math.max(10, Math.min(30, (this.stream.columns ?? 100) - 90)))}\x1b[K`);
      this.drawn = true;
    } else if (Date.now() - this.lastPlain >= this.plainEveryMs) {
      this.lastPlain = Date.now();
      this.stream.write(`${this.render(f)}\n`);
    }
  }

  finish(f: ProgressFigures): void {
    if (this.stream.isTTY) this.update(f);
    else this.stream.write(`${this.render(f)}\n`);
    if (this.drawn) this.stream.write('\n');
  }
}
