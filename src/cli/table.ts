import { cellText } from './output.js';

/** Plain text tables for people (numbers right-aligned; line feeds and control characters of user data shown escaped). */
export function renderTable(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((v) => cellText(String(v))))];
  const widths = headers.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const numeric = headers.map(
    (_, c) => rows.length > 0 && rows.every((r) => typeof r[c] === 'number' || /^[-$\d.,%]+$/.test(String(r[c] ?? ''))),
  );
  const line = (r: string[]) =>
    r
      .map((v, c) => (numeric[c] ? v.padStart(widths[c]!) : v.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}
