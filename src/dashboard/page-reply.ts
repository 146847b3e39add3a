import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiDeps } from '../http/api-deps.js';
import { ApiError } from '../http/api-errors.js';
import { loadVisibleBatch } from '../http/visible-records.js';
import { type html, layout, type PageNav } from './html.js';

/** Nothing but chatq's own script, styles and inline SVG; no framing by other sites. */
export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The menu of a page, as the reader may see it. */
export const navOf = (req: FastifyRequest, section: PageNav['section']): PageNav => ({
  section,
  admin: req.principal.admin,
});

/** Answers with a whole page: HTML under the dashboard's CSP, never cached. */
export const sendPage = (reply: FastifyReply, title: string, n: PageNav | null, body: ReturnType<typeof html>) =>
  reply
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-store')
    .send(layout(title, n, body));

/** A batch the reader may see, or a 404. */
export const visibleBatch = (deps: ApiDeps, req: FastifyRequest, id: string) =>
  loadVisibleBatch(deps, req.principal.scope, id, () => new ApiError(404, `No batch ${id}.`, 'not_found', 'id'));
