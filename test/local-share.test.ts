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
        const share = new LocalShare({ rpm, headroom: HEADROOM, aheadMs: AHEAD_MS });
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
    const share = new LocalShare({ rpm: 600, headroom: HEADROOM, aheadMs: AHEAD_MS });
    share.enter(0, 1);
    // Idle for a minute, then 50 asks at once: slots spaced 101 ms apart from now (none in a burst), and none at or
    // after the switch back half a second later (those come back then).
    const taken = Array.from({ length: 50 }, () => share.take(MINUTE_MS, MINUTE_MS + 500));
    const sleeps = taken.flatMap((t) => ('sleepMs' in t ? [t.sleepMs] : []));
    expect(sleeps).toEqual([0, 101, 202, 303, 404]);
    expect(taken[5]).toEqual({ laterMs: 501 });
  });
});
