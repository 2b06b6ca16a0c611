// The user's adapters: their checkpoints and metrics; download, merge-export, delete.
import { del, get, post, request } from '../api.js';
import { clear, errorBox, h, num, table, toast, when } from '../dom.js';

async function download(adapter) {
  const r = await request('GET', `/v1/adapters/${encodeURIComponent(adapter.id)}/download`, { raw: true });
  const link = h('a', { href: URL.createObjectURL(await r.blob()), download: `${adapter.id}.tar.gz` });
  document.body.append(link); link.click(); link.remove();
}

export async function render(view) {
  const list = h('div', { id: 'adapters-list' });
  const load = async () => {
    const adapters = (await get('/v1/adapters')).data;
    const run = (fn, done) => async () => { try { await fn(); toast(done); await load(); } catch (err) { list.prepend(errorBox(err)); } };
    clear(list).append(table([
      { label: 'Adapter', value: (a) => h('div', {}, h('strong', {}, a.name), h('div', { class: 'hint' }, `${a.id} · base ${a.base_model}`)), sort: (a) => a.name },
      { label: 'Job', value: (a) => (a.fine_tuning_job_id ? h('a', { href: `#/jobs/${a.fine_tuning_job_id}` }, a.fine_tuning_job_id) : '—') },
      { label: 'Metrics', value: (a) => Object.entries(a.metrics || {}).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${k}: ${num(v)}`).join(', ') || '—' },
      { label: 'Checkpoints', value: (a) => (a.checkpoints.length ? h('ul', {}, a.checkpoints.map((c) => h('li', {}, h('code', {}, c)))) : '—') },
      { label: 'Created', value: (a) => when(a.created_at), sort: (a) => a.created_at },
      { label: 'Actions', value: (a) => h('div', { role: 'group', 'aria-label': `Actions on ${a.name}` },
        h('button', { type: 'button', class: 'secondary', onclick: () => download(a).catch((e) => list.prepend(errorBox(e))) }, 'Download'),
        h('button', { type: 'button', class: 'secondary', onclick: run(() => post(`/v1/adapters/${a.id}/export`), 'Merge-export job submitted') }, 'Merge-export'),
        h('button', { type: 'button', class: 'danger', onclick: () => { if (confirm(`Delete ${a.name}?`)) run(() => del(`/v1/adapters/${a.id}`), 'Deleted')(); } }, 'Delete')) },
    ], adapters, { emptyText: 'No adapters yet: fine-tune a model from the Jobs page.' }));
  };
  view.append(h('h1', {}, 'Adapters'), list);
  await load();
}
