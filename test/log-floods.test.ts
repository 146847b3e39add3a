import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { logFailure } from '../src/shared/redis/condition-log.js';

describe('a Redis outage is logged once, not once per job', () => {
  it("BullMQ's lost-lock errors of every job in an outage make one line", () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    for (let i = 0; i < 150; i++)
      logFailure(logger, 'error', {}, new Error(`could not renew lock for job batch_x-${i}`), 'redis error');
    for (let i = 0; i < 150; i++)
      logFailure(logger, 'error', {}, new Error(`Missing lock for job batch_x-${i}. moveToFinished`), 'redis error');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ condition: 'job_lock_lost', level: 50 });
    // Another failure still gets its own line.
    logFailure(logger, 'error', {}, new Error('something else'), 'job failed unexpectedly');
    expect(lines).toHaveLength(2);
  });
});
