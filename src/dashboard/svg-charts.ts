import { escapeHtml, raw, type Html } from './html.js';

/** Charts drawn on the server as inline SVG: they show with JavaScript off, and need no chart library or CDN. */

export interface Point {
  label: string;
  value: number;
}

const W = 720;
const H = 220;
const PAD = { left: 64, right: 16, top: 12, bottom: 40 };

const niceMax = (max: number) => {
  if (max <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  return Math.ceil(max / step) * step;
};

function frame(title: string, max: number, format: (v: number) => string, inner: string, labels: string): Html {
  const plotH = H - PAD.top - PAD.bottom;
  const ticks = [0, 0.5, 1].map((f) => {
    const y = PAD.top + plotH * (1 - f);
    return `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y}" y2="${y}" class="grid"/><text x="${PAD.left - 6}" y="${y + 4}" text-anchor="end">${escapeHtml(format(max * f))}</text>`;
  });
  return raw(
    `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(title)}"><title>${escapeHtml(title)}</title>${ticks.join('')}${inner}${labels}</svg>`,
  );
}

/** Labels under the x axis, thinned so that they do not overlap. */
function xLabels(points: Point[], x: (i: number) => number): string {
  const every = Math.max(1, Math.ceil(points.length / 8));
  return points
    .map((p, i) =>
      i % every === 0
        ? `<text x="${x(i)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${escapeHtml(p.label)}</text>`
        : '',
    )
    .join('');
}

/** One bar per point (e.g. cost per day), with the exact value in each bar's tooltip. */
export function barChart(title: string, points: Point[], format: (v: number) => string): Html {
  const max = niceMax(Math.max(0, ...points.map((p) => p.value)));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, points.length);
  const x = (i: number) => PAD.left + slot * i + slot / 2;
  const bars = points
    .map((p, i) => {
      const h = (p.value / max) * plotH;
      return `<rect class="bar" x="${x(i) - slot * 0.35}" y="${PAD.top + plotH - h}" width="${slot * 0.7}" height="${h}"><title>${escapeHtml(`${p.label}: ${format(p.value)}`)}</title></rect>`;
    })
    .join('');
  return frame(title, max, format, bars, xLabels(points, x));
}

/** A line through the points (e.g. pass rate per run) on a fixed scale from 0 to `max`. */
export function lineChart(title: string, points: Point[], format: (v: number) => string, max: number): Html {
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (points.length < 2 ? plotW / 2 : (plotW * i) / (points.length - 1));
  const y = (v: number) => PAD.top + plotH * (1 - v / max);
  const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(i)},${y(p.value)}`).join(' ');
  const dots = points
    .map(
      (p, i) =>
        `<circle class="dot" cx="${x(i)}" cy="${y(p.value)}" r="4"><title>${escapeHtml(`${p.label}: ${format(p.value)}`)}</title></circle>`,
    )
    .join('');
  return frame(title, max, format, `<path class="line" d="${path}"/>${dots}`, xLabels(points, x));
}
