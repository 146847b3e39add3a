import type { FileEstimate } from '../http/file-estimate.js';
import { estimateRows } from '../producer/estimate-rows.js';
import { formatCount } from '../shared/display-format.js';
import type { StoredFile } from '../shared/files/file-store.js';
import { html, type Html, table } from './html.js';

/** The form that opens an uploaded file's page by its id (on the batches page). */
export const fileForm = (): Html => html`<form class="filters" method="get" action="/files">
<label>Uploaded file <input name="id" placeholder="file-…" maxlength="100" required></label>
<button type="submit">Estimate</button>
</form>`;

/**
 * An uploaded file before its batch is made: what it will send, cost and take (the estimate `chatq estimate` and the
 * API's dry run give), and how to make the batch.
 */
export function filePage(file: StoredFile, fe: FileEstimate): Html {
  const rows = estimateRows(fe.estimate, fe.settings, fe.latencyFrom);
  return html`<p>${file.filename} · ${formatCount(file.bytes)} bytes · uploaded ${new Date(file.createdAt).toISOString().slice(0, 16).replace('T', ' ')} UTC</p>
${table(
  ['estimate', file.id],
  rows.map(([k, v]) => [k, html`<span data-field="${k}">${v}</span>`]),
)}
${fe.badLines ? html`<p class="error">Lines of this file that are not requests (they would be rejected): ${formatCount(fe.badLines)}.</p>` : ''}
<p>Nothing is sent yet. Make the batch with <code>POST /v1/batches</code> and <code>"input_file_id": "${file.id}"</code> (the OpenAI SDK's <code>batches.create</code>); its progress then shows here under Batches.</p>`;
}
