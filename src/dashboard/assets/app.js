// chatq dashboard: makes server-rendered pages live. Rows marked data-batch get their numbers from
// server-sent events (/ui/events); the pages read the same without this script.
(() => {
  const rows = [...document.querySelectorAll('[data-batch]')];
  if (rows.length === 0 || !('EventSource' in window)) return;
  const ENDED = ['completed', 'cancelled', 'failed', 'expired'];
  const ids = [...new Set(rows.map((r) => r.dataset.batch))];
  const count = (n) => n.toLocaleString('en-US');
  const usd = (v) => `$${v < 0.01 && v > 0 ? v.toFixed(6) : v.toFixed(4)}`;
  const pct = (v) => (v === null ? '-' : `${(v * 100).toFixed(1)}%`);
  const source = new EventSource(`/ui/events?batches=${encodeURIComponent(ids.join(','))}`);
  source.addEventListener('batch', (event) => {
    const p = JSON.parse(event.data);
    for (const row of rows.filter((r) => r.dataset.batch === p.id)) {
      const set = (field, text) =>
        row.querySelectorAll(`[data-field="${field}"]`).forEach((el) => {
          el.textContent = text;
        });
      const before = row.querySelector('[data-field="status"]')?.textContent;
      set('status', p.status);
      row.querySelectorAll('[data-field="status"]').forEach((el) => {
        el.className = `status status-${p.status}`;
      });
      row.querySelectorAll('[data-field="bar"]').forEach((el) => {
        el.max = Math.max(1, p.total);
        el.value = p.done;
      });
      set('done', count(p.done));
      set('total', count(p.total));
      set('succeeded', count(p.succeeded));
      set('notSucceeded', count(p.notSucceeded));
      set('cost', usd(p.costUsd));
      set('tokens', count(p.tokens));
      set('pass', pct(p.passRate));
      // A batch page whose batch just ended reloads once, for its final tables and files.
      if (row.classList.contains('summary') && before && before !== p.status && ENDED.includes(p.status))
        location.reload();
    }
  });
})();
