/**
 * Server-rendered HTML with escaping by default: every value put in an `html` template is escaped unless it is
 * itself Html (made by `html` or `raw`). Pages are read with JavaScript off; the script only makes them live.
 */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(render).join('');
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  return new Html(strings.reduce((out, s, i) => out + s + (i < values.length ? render(values[i]!) : ''), ''));
}

/** Markup chatq made itself (an SVG chart): not escaped. */
export const raw = (text: string) => new Html(text);

/** A query string from defined values, for links that keep the page's filters. */
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export interface PageNav {
  /** The section the page belongs to, highlighted in the menu. */
  section: 'batches' | 'costs' | 'evals';
  /** Shows the operator link (bull-board) to admins. */
  admin: boolean;
}

const SECTIONS: [PageNav['section'], string, string][] = [
  ['batches', 'Batches', '/'],
  ['costs', 'Costs', '/costs'],
  ['evals', 'Evaluations', '/evals'],
];

/** The page frame: menu (none on the login form), title, the content; styles and script from chatq itself (no CDN). */
export function layout(title: string, nav: PageNav | null, body: Html): string {
  return `<!doctype html>${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · chatq</title>
<script src="/ui/no-url-credentials.js"></script>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/app.css">
<script src="/ui/app.js" defer></script>
</head>
<body>
<header>
<a class="brand" href="/">chatq</a>
${
  nav
    ? html`<nav>${SECTIONS.map(([key, label, href]) => html`<a href="${href}"${raw(key === nav.section ? ' aria-current="page"' : '')}>${label}</a>`)}${nav.admin ? html`<a href="/admin/queues">Queues</a>` : ''}</nav>
<form method="post" action="/logout" class="inline signout"><button type="submit">Sign out</button></form>`
    : ''
}
</header>
<main>
<h1>${title}</h1>
${body}
</main>
</body>
</html>`}`;
}

/** A table of already-rendered cells; `rowAttrs` marks rows for live updates. */
export function table(headers: string[], rows: Value[][], rowAttrs: (i: number) => Html = () => raw('')): Html {
  return html`<table>
<thead><tr>${headers.map((h) => html`<th>${h}</th>`)}</tr></thead>
<tbody>${rows.length ? rows.map((r, i) => html`<tr${rowAttrs(i)}>${r.map((c) => html`<td>${c}</td>`)}</tr>`) : html`<tr><td colspan="${headers.length}" class="empty">Nothing here yet.</td></tr>`}</tbody>
</table>`;
}
