// Eval reports: the score table per model (base, checkpoints, adapters) and the outputs side by side per row,
// rows sortable by any model's score.
import { get } from '../api.js';
import { clear, field, h, num, statusBadge, table, when } from '../dom.js';

async function listView(view) {
  const jobs = (await get('/v1/evals/jobs', { limit: 100 })).data;
  view.append(h('h1', {}, 'Eval reports'), table([
    { label: 'Eval job', value: (j) => h('a', { href: `#/evals/${j.id}` }, j.id), sort: (j) => j.id },
    { label: 'Status', value: (j) => statusBadge(j.status), sort: (j) => j.status },
    { label: 'Models', value: (j) => (j.models || []).join(', ') },
    { label: 'Created', value: (j) => when(j.created_at), sort: (j) => j.created_at },
  ], jobs, { emptyText: 'No eval jobs yet.' }));
}

function scoreTable(report) {
  const metrics = [...new Set(report.models.flatMap((m) => Object.keys(m.scores || {})))];
  return h('div', { class: 'card', id: 'score-table' }, h('h2', {}, 'Scores per model'), table([
    { label: 'Model', value: (m) => h('code', {}, m.name), sort: (m) => m.name },
    ...metrics.map((k) => ({ label: k, value: (m) => num(m.scores[k]), sort: (m) => m.scores[k] })),
    { label: 'Errors', value: (m) => m.errors, sort: (m) => m.errors },
  ], report.models));
}

function rowsView(report) {
  const models = report.models.map((m) => m.name);
  const metrics = report.metrics.filter((m) => m !== 'reference_loss').concat(report.metrics.includes('reference_loss') ? ['reference_loss'] : []);
  const options = models.flatMap((m) => metrics.map((k) => h('option', { value: JSON.stringify([m, k]) }, `${k} of ${m}`)));
  const sortBy = h('select', { id: 'sort-rows' }, h('option', { value: '' }, 'row order'), options);
  const dir = h('select', { id: 'sort-dir' }, h('option', { value: '-1' }, 'highest first'), h('option', { value: '1' }, 'lowest first'));
  const list = h('div', { id: 'eval-rows' });
  const draw = () => {
    const rows = report.examples.slice();
    if (sortBy.value) {
      const [m, k] = JSON.parse(sortBy.value), d = Number(dir.value);
      const score = (r) => (r.outputs[m] && typeof r.outputs[m][k] === 'number' ? r.outputs[m][k] : -Infinity * d);
      rows.sort((a, b) => (score(a) - score(b)) * d);
    }
    clear(list).append(...rows.map((r) => h('article', { class: 'card eval-row' },
      h('h3', {}, `Row ${r.index + 1}${r.line ? ` (line ${r.line})` : ''}`),
      h('p', {}, h('strong', {}, 'Instruction: '), r.instruction), r.input ? h('p', {}, h('strong', {}, 'Input: '), r.input) : null,
      r.reference ? h('p', {}, h('strong', {}, 'Reference: '), r.reference) : null,
      h('div', { class: 'side-by-side' }, models.map((m) => {
        const o = r.outputs[m] || {};
        return h('section', { 'aria-label': m }, h('h4', {}, h('code', {}, m)), h('pre', {}, o.text ?? o.error ?? '—'),
          h('p', { class: 'hint' }, metrics.filter((k) => o[k] !== undefined).map((k) => `${k} ${num(o[k])}`).join(' · ')));
      })))));
  };
  sortBy.addEventListener('change', draw); dir.addEventListener('change', draw);
  draw();
  return h('div', {}, h('h2', {}, 'Outputs side by side'), h('div', { class: 'row card' }, field('Sort rows by', sortBy), field('Order', dir)), list);
}

export async function render(view, [jobId]) {
  if (!jobId) return listView(view);
  const job = await get(`/v1/evals/jobs/${jobId}`);
  view.append(h('h1', {}, 'Eval report ', h('code', {}, job.id)),
    h('p', {}, statusBadge(job.status), ' · ', h('a', { href: `#/jobs/${job.id}` }, 'job details and events')));
  if (!job.report) { view.append(h('p', {}, 'The report is written when the job finishes.')); return null; }
  view.append(scoreTable(job.report), rowsView(job.report));
  return null;
}
