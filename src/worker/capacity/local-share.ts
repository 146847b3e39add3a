import type { OwnEntry } from './acquire-call.js';

/**
 * A worker's own share of the global RPM and TPM limits while the base tag's master is out of reach (stopped, failing
 * over), so that its shards on other masters go on. Requests: the limit ÷ the live workers (as last read). The global
 * limiter spaces requests evenly (60 s / RPM apart, a slot reserved at most RESERVE_AHEAD_MS ahead), so the requests
 * reserved before the switch thin out as the minute goes on; a worker's own slots start RESERVE_AHEAD_MS after it found
 * the base tag away and are spaced N times as far apart, so N workers together add no more than the global spacing
 * would: no sliding minute holds more than the limit (and one request).
 * Tokens: what the global log may still hold of any later minute is bounded from the log's total as last answered
 * (at `a`) and the global limiter's smoothing (at most a sixth of the limit in any sixth of the minute): at most that
 * total plus a sixth of the limit for each sixth begun from `a` to the switch (plus RESERVE_AHEAD_MS), and at most a
 * sixth of the limit for each sixth of a later minute that lies before that moment. Each worker keeps its own log:
 * in any minute at most (limit − that bound) ÷ N, in any sixth at most a sixth of the limit ÷ N. The N workers'
 * bounds are each valid, so together they stay within the limit. Its own calls' tokens go into the global log when it
 * reaches the base tag again (leave-own-share.lua), and it makes none between then and the switch back.
 * Every worker goes back to the global limit at one moment (BaseReach), so the spacing goes on without an overlap. A
 * base master that answers, but slower than a second, counts as out of reach: its workers' own shares then add to
 * what it still reserves. A worker that does not reach it again before the switch back (its probes fail) goes on by
 * its own share meanwhile, its tokens not yet in the global log.
 */
export interface ShareLimits {
  rpm: number;
  tpm: number;
  /** The fraction of each window kept free (as the global limiter keeps it). */
  headroom: number;
  /** How far ahead a request slot may be reserved (the call sleeps until it in its call slot). */
  aheadMs: number;
}

/** The global token log's total as last answered, and when (Date.now() ms). */
export interface TokensSeen {
  at: number;
  total: number;
}

/** A call on the worker's own share: when (Date.now() ms), its log entry and its tokens. */
interface OwnCall {
  at: number;
  member: string;
  tokens: number;
}

const MINUTE_MS = 60_000;
/** The longest a call that found no own room waits before it asks again. */
const ROOM_RECHECK_MS = 1_000;

export type ShareSlot = { sleepMs: number } | { laterMs: number };

/**
 * A worker's own calls of the last window, oldest first, with the running sums of the window and of its last sixth:
 * each call is added and leaves each sum once, so a call's check does not grow with the calls in the window.
 */
class OwnCalls {
  private calls: OwnCall[] = [];
  private byMember = new Map<string, OwnCall>();
  /** The first call still in the window, and in its last sixth; what they hold; where they were cut (exclusive). */
  private minuteHead = 0;
  private sixthHead = 0;
  inMinute = 0;
  inSixth = 0;
  private minuteCut = Number.NEGATIVE_INFINITY;
  private sixthCut = Number.NEGATIVE_INFINITY;

  constructor(private readonly windowMs: number) {}

  /** Moves the window to end at `t` (never back). */
  advance(t: number): void {
    this.minuteCut = Math.max(this.minuteCut, t - this.windowMs);
    this.sixthCut = Math.max(this.sixthCut, t - this.windowMs / 6);
    for (; this.sixthHead < this.calls.length && this.calls[this.sixthHead]!.at <= this.sixthCut; this.sixthHead++)
      this.inSixth -= this.calls[this.sixthHead]!.tokens;
    for (
      ;
      this.minuteHead < this.calls.length && this.calls[this.minuteHead]!.at <= this.minuteCut;
      this.minuteHead++
    ) {
      this.inMinute -= this.calls[this.minuteHead]!.tokens;
      this.byMember.delete(this.calls[this.minuteHead]!.member);
    }
    if (this.minuteHead > 1_024 && this.minuteHead * 2 > this.calls.length)
      this.keep(this.calls.slice(this.minuteHead));
  }

  /** When the oldest call leaves the last sixth, and the window. */
  get leaves(): number[] {
    const sixth = this.calls[this.sixthHead];
    const minute = this.calls[this.minuteHead];
    return [...(sixth ? [sixth.at + this.windowMs / 6] : []), ...(minute ? [minute.at + this.windowMs] : [])];
  }

  /** A call at `at`, no earlier than the last. */
  add(call: OwnCall): void {
    this.calls.push(call);
    this.byMember.set(call.member, call);
    this.inMinute += call.tokens;
    this.inSixth += call.tokens;
  }

  /** A call used `tokens`: true when it is still in the window. */
  settle(member: string, tokens: number): boolean {
    const call = this.byMember.get(member);
    if (!call) return false;
    if (call.at > this.minuteCut) this.inMinute += tokens - call.tokens;
    if (call.at > this.sixthCut) this.inSixth += tokens - call.tokens;
    call.tokens = tokens;
    return true;
  }

  /** The calls in the window. */
  get inWindow(): OwnCall[] {
    return this.calls.slice(this.minuteHead);
  }

  /** Keeps only `calls` (those in the window, oldest first), with their sums. */
  keep(calls: OwnCall[]): void {
    this.calls = calls;
    this.byMember = new Map(calls.map((c) => [c.member, c]));
    this.minuteHead = 0;
    this.sixthHead = calls.findIndex((c) => c.at > this.sixthCut);
    if (this.sixthHead < 0) this.sixthHead = calls.length;
    this.inMinute = calls.reduce((n, c) => n + c.tokens, 0);
    this.inSixth = calls.slice(this.sixthHead).reduce((n, c) => n + c.tokens, 0);
  }
}

export class LocalShare {
  private nextSlot: number | undefined;
  private spacingMs = 0;
  private workers = 1;
  /** Until when the global log may hold tokens reserved before the switch, and at most how many in any minute. */
  private oldUntil = 0;
  private oldBound = 0;
  private own: OwnCalls;
  /** Its own calls' tokens went into the global log: none more until the switch back. */
  private handedBack = false;

  /** The limits' window, with its headroom. */
  readonly windowMs: number;

  constructor(private readonly limits: ShareLimits) {
    this.windowMs = MINUTE_MS * (1 + limits.headroom);
    this.own = new OwnCalls(this.windowMs);
  }

  /** Whether the worker is on its own share. */
  get active(): boolean {
    return this.nextSlot !== undefined;
  }

  /** The base tag went out of reach at `now`, with `workers` workers live as last read (this one among them). */
  enter(now: number, workers: number, seen?: TokensSeen): void {
    if (this.nextSlot !== undefined) return;
    const { rpm, tpm, headroom, aheadMs } = this.limits;
    this.workers = Math.max(1, workers);
    this.spacingMs = rpm > 0 ? ((MINUTE_MS * (1 + headroom)) / rpm) * this.workers : 0;
    this.nextSlot = rpm > 0 ? now + aheadMs + this.spacingMs : now;
    this.oldUntil = now + aheadMs;
    const sixth = this.windowMs / 6;
    this.oldBound = seen
      ? Math.min(tpm, seen.total + Math.ceil(Math.max(0, this.oldUntil - seen.at) / sixth) * (tpm / 6))
      : tpm;
    this.own = new OwnCalls(this.windowMs);
    this.handedBack = false;
  }

  /** Back to the global limit. */
  leave(): void {
    this.nextSlot = undefined;
    this.own = new OwnCalls(this.windowMs);
  }

  /** The tokens reserved before the switch that the global log may hold of the minute ending at `u`. */
  private oldTokens(u: number): number {
    const before = this.oldUntil - (u - this.windowMs);
    if (before <= 0) return 0;
    return Math.min(this.oldBound, Math.ceil(before / (this.windowMs / 6)) * (this.limits.tpm / 6));
  }

  /** 0 when `tokens` more fit the worker's own token share at `t`; else the ms until they may. */
  private tokenWait(t: number, tokens: number): number {
    const { tpm } = this.limits;
    if (tpm === 0) return 0;
    this.own.advance(t);
    const { inMinute, inSixth } = this.own;
    const minuteRoom = (tpm - this.oldTokens(t)) / this.workers;
    const sixthRoom = tpm / 6 / this.workers;
    // An empty sixth admits one call (as the global limiter's does) that fits the minute's room.
    if (inMinute + tokens <= minuteRoom && (inSixth === 0 || inSixth + tokens <= sixthRoom)) return 0;
    const leaves = this.own.leaves;
    return Math.max(1, Math.min(ROOM_RECHECK_MS, ...leaves.map((at) => Math.ceil(at - t))));
  }

  /**
   * Reserves the worker's next request slot before `until` (the switch back), for a call of `tokens` logged as
   * `member`: how long to sleep until it, when it is at most `aheadMs` away; else how long until one may be
   * (`later`), nothing reserved. A slot not used is not given back: no credit builds up.
   */
  take(now: number, until = Number.POSITIVE_INFINITY, tokens = 0, member = ''): ShareSlot {
    const slot = Math.max(now, this.nextSlot ?? now);
    // No slot of its own at or after the switch back: the global spacing starts there.
    if (slot >= until || this.handedBack)
      return { laterMs: Math.ceil(Math.min(until, now + ROOM_RECHECK_MS) - now) + 1 };
    if (slot - now > this.limits.aheadMs) return { laterMs: Math.ceil(slot - now - this.limits.aheadMs) };
    const wait = this.tokenWait(slot, tokens);
    if (wait > 0) return { laterMs: wait };
    if (tokens > 0) this.own.add({ at: slot, member, tokens });
    this.nextSlot = slot + this.spacingMs;
    return { sleepMs: Math.ceil(slot - now) };
  }

  /** A call on the worker's own share used `tokens`: true when its entry is still its own (not yet handed back). */
  settle(member: string, tokens: number): boolean {
    return this.own.settle(member, tokens);
  }

  /** Its own calls of the last window not yet handed back, for the global log (how long ago each was made). */
  toHandBack(now: number): OwnEntry[] {
    return this.own.inWindow.map((c) => ({ member: c.member, ago_ms: Math.round(now - c.at), tokens: c.tokens }));
  }

  /** The global log took these: they are no longer its own, and no call more goes on its own tokens. */
  handedBackAll(entries: OwnEntry[]): void {
    const gone = new Set(entries.map((e) => e.member));
    this.own.keep(this.own.inWindow.filter((c) => !gone.has(c.member)));
    this.handedBack = this.limits.tpm > 0;
  }
}
