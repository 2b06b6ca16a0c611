// Datasets from generation jobs: rows with their provenance; rejected rows with the filter that dropped them
// and the nearest kept instruction with its ROUGE-L; filters by verdict (and by filter for rejected rows).
import { get } from '../api.js';
import { clear, errorBox, field, h, num, table, when } from '../dom.js';

async function listView(view) {
  const sets = (await get('/v1/datasets', { limit: 100 })).data;
  view.append(h('h1', {}, 'Datasets'), table([
    { label: 'Dataset', value: (d) => h('a', { href: `#/datasets/${d.id}` }, d.name || d.id), sort: (d) => d.name },
    { label: 'Kept', value: (d) => d.n_rows, sort: (d) => d.n_rows },
    { label: 'Rejected', value: (d) => d.n_rejected, sort: (d) => d.n_rejected },
    { label: 'Cost (USD)', value: (d) => num(d.cost_usd, 3), sort: (d) => d.cost_usd },
    { label: 'Created', value: (d) => when(d.created_at), sort: (d) => d.created_at },
  ], sets, { emptyText: 'No datasets yet: a generation job makes one.' }));
}

function provenance(p) {
  if (!p) return '—';
  return h('ul', { class: 'hint' }, Object.entries(p).map(([k, v]) => h('li', {}, `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`)));
}

export async function render(view, [datasetId]) {
  if (!datasetId) return listView(view);
  const ds = await get(`/v1/datasets/${datasetId}`);
  const verdict = h('select', { id: 'ds-verdict' }, h('option', { value: 'kept' }, 'kept'), h('option', { value: 'rejected' }, 'rejected'));
  const filter = h('select', { id: 'ds-filter' }, h('option', { value: '' }, 'any filter'),
    Object.keys(ds.rejected_by_filter).map((f) => h('option', { value: f }, `${f} (${ds.rejected_by_filter[f]})`)));
  const list = h('div', { id: 'dataset-rows' });
  let next = null, rows = [];
  const draw = () => {
    const rejected = verdict.value === 'rejected';
    clear(list).append(table([
      { label: '#', value: (r) => r.index, sort: (r) => r.index },
      { label: 'Instruction', value: (r) => r.instruction ?? '—' },
      { label: 'Input', value: (r) => r.input || '—' },
      { label: 'Output', value: (r) => r.output ?? '—' },
      ...(rejected ? [{ label: 'Filter', value: (r) => r.filter ?? '—', sort: (r) => r.filter },
        { label: 'Nearest kept instruction', value: (r) => r.nearest ?? '—' },
        { label: 'ROUGE-L', value: (r) => num(r.score, 3), sort: (r) => r.score }]
        : [{ label: 'Provenance', value: (r) => provenance(r.provenance) }]),
    ], rows, { caption: `${rows.length} ${verdict.value} row(s) shown` }));
    if (next !== null) list.append(h('button', { type: 'button', class: 'secondary', onclick: () => load(true) }, 'Load more'));
  };
  const load = async (more) => {
    try {
      const page = await get(`/v1/datasets/${ds.id}/rows`, { verdict: verdict.value, filter: verdict.value === 'rejected' ? filter.value : '',
        after: more ? next : null, limit: 50 });
      rows = more ? rows.concat(page.data) : page.data; next = page.has_more ? page.next_after : null; draw();
    } catch (err) { clear(list).append(errorBox(err)); }
  };
  verdict.addEventListener('change', () => { filter.disabled = verdict.value !== 'rejected'; load(false); });
  filter.addEventListener('change', () => load(false));
  filter.disabled = true;
  view.append(h('h1', {}, 'Dataset ', h('code', {}, ds.name || ds.id)),
    h('p', {}, `${ds.n_rows} kept · ${ds.n_rejected} rejected · training file `, h('code', {}, ds.training_file || '—'),
      ds.job_id ? h('span', {}, ' · ', h('a', { href: `#/jobs/${ds.job_id}` }, 'the generation job')) : ''),
    h('div', { class: 'row card' }, field('Verdict', verdict), field('Rejected by', filter)), list);
  await load(false);
  return null;
}
