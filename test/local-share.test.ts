import { describe, expect, it } from 'vitest';
import { LocalShare } from '../src/worker/capacity/local-share.js';
import { rng } from './helpers/seeded-random.js';

const MINUTE_MS = 60_000;
const AHEAD_MS = 1_000;
const HEADROOM = 0.01;

/** The most request slots in any sliding minute of `slots` (sorted). */
function busiestMinute(slots: number[]): number {
  let most = 0;
  for (let i = 0, j = 0; i < slots.length; i++) {
    while (slots[i]! - slots[j]! >= MINUTE_MS) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

/**
 * The global limiter's request slots as acquire-capacity.lua reserves them (GCRA, no burst: one window × (1 +
 * headroom) / RPM apart, at most AHEAD_MS ahead), for calls asking at `asks` (sorted).
 */
function globalSlots(asks: number[], rpm: number, from = 0): number[] {
  const spacing = (MINUTE_MS * (1 + HEADROOM)) / rpm;
  let tat = from;
  const slots: number[] = [];
  for (const at of asks) {
    const slot = Math.max(at, tat);
    if (slot - at > AHEAD_MS) continue;
    slots.push(slot);
    tat = slot + spacing;
  }
  return slots;
}

describe("a worker's own share of the RPM limit while the base tag is out of reach", () => {
  it.each([
    { rpm: 600, workers: 2 },
    { rpm: 12_000, workers: 2 },
    { rpm: 3_000, workers: 5 },
  ])(
    'keeps every sliding minute within $rpm across the switch to it and back ($workers workers)',
    ({ rpm, workers }) => {
      const random = rng(rpm + workers);
      // Calls ask far more often than the limit allows, for 3 minutes through the global limiter, then (the base tag
      // away at `away`) each worker on its own share from when it noticed, until they all go back at `back`.
      const away = 3 * MINUTE_MS;
      const back = away + 2 * MINUTE_MS + 7_000;
      const asks = (from: number, to: number, perSecond: number) =>
        Array.from({ length: Math.ceil(((to - from) / 1000) * perSecond) }, () => from + random() * (to - from)).sort(
          (a, b) => a - b,
        );
      const slots = globalSlots(asks(0, away, (rpm / 60) * 3), rpm);
      for (let w = 0; w < workers; w++) {
        const share = new LocalShare({ rpm, tpm: 0, headroom: HEADROOM, aheadMs: AHEAD_MS });
        // Each notices within the ask's second, and asks in bursts and lulls.
        share.enter(away + 1_000 + random() * 500, workers);
        for (const at of asks(away + 1_000, back, ((rpm / 60) * 3) / workers)) {
          if (random() < 0.3) continue;
          const taken = share.take(at, back);
          if ('sleepMs' in taken) slots.push(at + taken.sleepMs);
        }
      }
      // Back on the global limiter at the switch (its last slot long past), every worker at once.
      slots.push(...globalSlots(asks(back, back + 2 * MINUTE_MS, (rpm / 60) * 3), rpm, back));
      slots.sort((a, b) => a - b);
      expect(slots.filter((t) => t >= back).length).toBeGreaterThan(0);
      expect(busiestMinute(slots)).toBeLessThanOrEqual(rpm);
      // And the shares are used: the workers together make most of the limit while the base tag is away.
      const away1 = slots.filter((t) => t >= away + 2 * MINUTE_MS - MINUTE_MS && t < away + 2 * MINUTE_MS).length;
      expect(away1).toBeGreaterThan(rpm * 0.9);
    },
  );

  it('takes no slot at or after the switch back, and builds up no credit while nobody asks', () => {
    const share = new LocalShare({ rpm: 600, tpm: 0, headroom: HEADROOM, aheadMs: AHEAD_MS });
    share.enter(0, 1);
    // Idle for a minute, then 50 asks at once: slots spaced 101 ms apart from now (none in a burst), and none at or
    // after the switch back half a second later (those come back then).
    const taken = Array.from({ length: 50 }, () => share.take(MINUTE_MS, MINUTE_MS + 500));
    const sleeps = taken.flatMap((t) => ('sleepMs' in t ? [t.sleepMs] : []));
    expect(sleeps).toEqual([0, 101, 202, 303, 404]);
    expect(taken[5]).toEqual({ laterMs: 501 });
  });
});

interface Entry {
  at: number;
  tokens: number;
}

const WINDOW_MS = MINUTE_MS * (1 + HEADROOM);
const sumFrom = (log: Entry[], from: number) => log.reduce((n, e) => (e.at > from ? n + e.tokens : n), 0);

/**
 * The global token limiter as acquire-capacity.lua keeps it: a call of `tokens` goes at `at` when the window's log
 * (with its headroom) has room for it and so has its last sixth (a sixth of the limit; an empty one admits a call).
 */
function globalAdmits(log: Entry[], at: number, tokens: number, tpm: number): boolean {
  const total = sumFrom(log, at - WINDOW_MS);
  const recent = sumFrom(log, at - WINDOW_MS / 6);
  return (total === 0 || total + tokens <= tpm) && (recent === 0 || recent + tokens <= tpm / 6);
}

/** The most tokens in any sliding minute of `log` (sorted by time). */
function busiestTokenMinute(log: Entry[]): number {
  let most = 0;
  let sum = 0;
  for (let i = 0, j = 0; i < log.length; i++) {
    sum += log[i]!.tokens;
    while (log[i]!.at - log[j]!.at >= MINUTE_MS) sum -= log[j++]!.tokens;
    most = Math.max(most, sum);
  }
  return most;
}

describe("a worker's own share of the TPM limit while the base tag is out of reach", () => {
  it.each([
    { tpm: 240_000, workers: 2, tokens: 280 },
    { tpm: 1_000_000, workers: 5, tokens: 900 },
  ])(
    'keeps every sliding minute within $tpm across the switch to it and back ($workers workers), and uses it',
    ({ tpm, workers, tokens }) => {
      const random = rng(tpm + workers);
      const away = 3 * MINUTE_MS + random() * 10_000;
      const back = away + 2 * MINUTE_MS + 7_000;
      // Calls ask every few ms, far more than the limit allows: through the global limiter until the base tag goes.
      const log: Entry[] = [];
      let seen = { at: 0, total: 0 };
      for (let at = 0; at < away; at += 2 + random() * 4)
        if (globalAdmits(log, at, tokens, tpm)) {
          log.push({ at, tokens });
          seen = { at, total: sumFrom(log, at - WINDOW_MS) };
        }
      // Each worker on its own share from when it noticed (its last answer `seen`), until every one goes back.
      const own: Entry[] = [];
      for (let w = 0; w < workers; w++) {
        const share = new LocalShare({ rpm: 0, tpm, headroom: HEADROOM, aheadMs: AHEAD_MS });
        share.enter(away + 1_000 + random() * 500, workers, seen);
        for (let at = away + 1_000; at < back; at += 2 + random() * 4 * workers) {
          if (random() < 0.3) continue;
          const taken = share.take(at, back, tokens, `w${w}:${at}`);
          if ('sleepMs' in taken) own.push({ at: at + taken.sleepMs, tokens });
        }
      }
      // Back on the global limiter, which holds the workers' own calls (handed back before the switch).
      log.push(...own);
      log.sort((a, b) => a.at - b.at);
      for (let at = back; at < back + 2 * MINUTE_MS; at += 2 + random() * 4)
        if (globalAdmits(log, at, tokens, tpm)) log.push({ at, tokens });
      expect(busiestTokenMinute(log)).toBeLessThanOrEqual(tpm);
      // The shares are used: in the outage's last minute the workers together make most of the limit.
      const lastMinute = own.filter((e) => e.at >= back - MINUTE_MS).reduce((n, e) => n + e.tokens, 0);
      expect(lastMinute).toBeGreaterThan(tpm * 0.9);
      // And from its first sixth on: what the log may still hold bounds the room, not the whole minute.
      const firstSixths = own.filter((e) => e.at < away + 1_500 + 20_000).reduce((n, e) => n + e.tokens, 0);
      expect(firstSixths).toBeGreaterThan(0);
    },
  );

  it('counts a call it settled at its real use, and takes none once its calls were handed back', () => {
    const share = new LocalShare({ rpm: 0, tpm: 5_400, headroom: HEADROOM, aheadMs: AHEAD_MS });
    share.enter(0, 1);
    // Nothing known of the global log: all of it may still be there for a minute after the switch.
    expect(share.take(2 * MINUTE_MS, Infinity, 500, 'a')).toEqual({ sleepMs: 0 });
    // A sixth of the limit per sixth: the next 500 waits, until the first settles at 100.
    expect('laterMs' in share.take(2 * MINUTE_MS + 1, Infinity, 500, 'b')).toBe(true);
    expect(share.settle('a', 100)).toBe(true);
    expect(share.take(2 * MINUTE_MS + 2, Infinity, 500, 'b')).toEqual({ sleepMs: 0 });
    const entries = share.toHandBack(2 * MINUTE_MS + 3);
    expect(entries.map((e) => [e.member, e.tokens])).toEqual([
      ['a', 100],
      ['b', 500],
    ]);
    share.handedBackAll(entries);
    expect(share.settle('a', 90)).toBe(false);
    expect('laterMs' in share.take(3 * MINUTE_MS, Infinity, 1, 'c')).toBe(true);
  });
});
