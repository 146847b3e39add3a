import type { FastifyReply } from 'fastify';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis/redis.js';
import { readBatches } from './batch-progress.js';

/** Batches one page may watch, pages watched at once by one server, and by one project's pages (admins' are one group). */
export const MAX_WATCHED = 100;
export const MAX_SUBSCRIBERS = 1_000;
export const PER_PROJECT_SUBSCRIBERS = 250;
const TICK_MS = 1_000;
const HEARTBEAT_MS = 15_000;

interface Subscriber {
  reply: FastifyReply;
  ids: string[];
  /** Whose page it is: a project, or "*" for an admin's. */
  owner: string;
  /** Whether the page's sign-in still stands (a session that can be signed out); none: its token, for good. */
  signedIn?: () => Promise<boolean>;
  /** What this page was last sent, per batch: only changes go out. */
  sent: Map<string, string>;
}

/**
 * Live progress over server-sent events, cheap with many tabs open: one timer per server reads every watched batch
 * once per second (one pipeline, whatever the number of pages), and each page gets only what changed for it.
 * Nothing runs while no page is open.
 */
export class LiveUpdates {
  private readonly subscribers = new Set<Subscriber>();
  private timer: NodeJS.Timeout | undefined;
  private beat = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  /** Whether the server, or `owner`'s share of it, has no room for another live page. */
  full(owner: string): boolean {
    if (this.subscribers.size >= MAX_SUBSCRIBERS) return true;
    let mine = 0;
    for (const s of this.subscribers) if (s.owner === owner) mine += 1;
    return mine >= PER_PROJECT_SUBSCRIBERS;
  }

  /**
   * Streams updates of `ids` (already checked to be visible to `owner`, the page's project) until the page goes, or
   * `signedIn` (asked every tick) says its session has ended. The caller checks `full` just before, with no await
   * between: a burst of pages cannot all pass the check first.
   */
  subscribe(reply: FastifyReply, ids: string[], owner: string, signedIn?: () => Promise<boolean>): void {
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    reply.raw.write('retry: 3000\n\n');
    const sub: Subscriber = { reply, ids, owner, sent: new Map(), ...(signedIn ? { signedIn } : {}) };
    this.subscribers.add(sub);
    reply.raw.on('close', () => this.drop(sub));
    this.timer ??= setInterval(() => void this.tick(), TICK_MS);
    void this.tick();
  }

  close(): void {
    for (const sub of this.subscribers) sub.reply.raw.end();
    this.subscribers.clear();
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Pages whose session was signed out (or expired) get nothing more: their streams end. */
  private async endSignedOut(): Promise<void> {
    const withSession = [...this.subscribers].filter((s) => s.signedIn);
    const still = await Promise.all(withSession.map((s) => s.signedIn!()));
    for (const [i, sub] of withSession.entries()) {
      if (still[i]) continue;
      sub.reply.raw.end();
      this.drop(sub);
    }
  }

  private drop(sub: Subscriber): void {
    this.subscribers.delete(sub);
    if (this.subscribers.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private async tick(): Promise<void> {
    const ids = [...new Set([...this.subscribers].flatMap((s) => s.ids))];
    let rows: Awaited<ReturnType<typeof readBatches>>;
    try {
      rows = await readBatches(this.redis, this.keys, ids);
      await this.endSignedOut();
    } catch {
      return; // Redis away: the pages keep what they show, and the next tick tries again.
    }
    const latest = new Map(rows.map((r) => [r.batch.id, JSON.stringify(r.progress)]));
    const heartbeat = (this.beat += TICK_MS) >= HEARTBEAT_MS;
    if (heartbeat) this.beat = 0;
    for (const sub of this.subscribers) {
      let out = '';
      for (const id of sub.ids) {
        const data = latest.get(id);
        if (data === undefined || sub.sent.get(id) === data) continue;
        sub.sent.set(id, data);
        out += `event: batch\ndata: ${data}\n\n`;
      }
      if (out || heartbeat) sub.reply.raw.write(out || ': keep-alive\n\n');
    }
  }
}
