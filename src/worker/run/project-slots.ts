/**
 * The jobs a worker process runs, by project: whether a project holds less than its share of the process's call
 * slots (its weight's share of them, among the projects with jobs here). While another project has heads waiting, a
 * lane of a project within its share keeps its slot for its slice; one at or over it goes back in line after each
 * turn whenever a job waits (finish-request.lua).
 */
export class ProjectSlots {
  private readonly running = new Map<string, number>();

  constructor(
    private readonly slots: number,
    private readonly weights: Record<string, number>,
  ) {}

  enter(project: string): void {
    this.running.set(project, (this.running.get(project) ?? 0) + 1);
  }

  leave(project: string): void {
    const n = (this.running.get(project) ?? 1) - 1;
    if (n > 0) this.running.set(project, n);
    else this.running.delete(project);
  }

  /** The jobs under way, all projects. */
  total(): number {
    let n = 0;
    for (const c of this.running.values()) n += c;
    return n;
  }

  withinShare(project: string): boolean {
    let total = 0;
    for (const p of this.running.keys()) total += this.weights[p] ?? 1;
    // A project with jobs elsewhere too, waiting here: counted as one more asking for its share.
    if (!this.running.has(project)) total += this.weights[project] ?? 1;
    return (this.running.get(project) ?? 0) < (this.slots * (this.weights[project] ?? 1)) / Math.max(2, total);
  }
}
