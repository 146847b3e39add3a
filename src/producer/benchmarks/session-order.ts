/**
 * A benchmark's sessions in the order they happened: by their dates as the published files write them (LongMemEval
 * "2023/05/20 (Sat) 02:21", LoCoMo "1:56 pm on 8 May, 2023"), ties in file order. An item with a date neither form
 * reads keeps its file order (its dates cannot be compared).
 */

const MONTHS = [
  'january',
  'february',
  'march',
  'april',
  'may',
  'june',
  'july',
  'august',
  'september',
  'october',
  'november',
  'december',
];

const LONGMEMEVAL = /^(\d{4})\/(\d{1,2})\/(\d{1,2}) \([A-Za-z]+\) (\d{1,2}):(\d{2})$/;
const LOCOMO = /^(\d{1,2}):(\d{2}) (am|pm) on (\d{1,2}) ([A-Za-z]+),? (\d{4})$/i;

/** A session's date as ms since the epoch (UTC: the files give no zone), or undefined when it is in neither form. */
export function sessionTime(date: string): number | undefined {
  const l = LONGMEMEVAL.exec(date.trim());
  if (l) return Date.UTC(Number(l[1]), Number(l[2]) - 1, Number(l[3]), Number(l[4]), Number(l[5]));
  const c = LOCOMO.exec(date.trim());
  if (!c) return undefined;
  const month = MONTHS.findIndex((m) => m.startsWith(c[5]!.toLowerCase()) && c[5]!.length >= 3);
  if (month < 0) return undefined;
  const hour = (Number(c[1]) % 12) + (c[3]!.toLowerCase() === 'pm' ? 12 : 0);
  return Date.UTC(Number(c[6]), month, Number(c[4]), hour, Number(c[2]));
}

/** `sessions` sorted by their dates (stable: ties keep file order), or as they are when a date cannot be read. */
export function inTimeOrder<T extends { date: string }>(sessions: T[]): T[] {
  const times = sessions.map((s) => sessionTime(s.date));
  if (times.some((t) => t === undefined)) return sessions;
  return sessions
    .map((s, i) => ({ s, t: times[i]!, i }))
    .sort((a, b) => a.t - b.t || a.i - b.i)
    .map(({ s }) => s);
}
