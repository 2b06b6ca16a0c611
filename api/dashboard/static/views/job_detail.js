// One job: status, progress with ETA, place in the queue, live events and loss curves over SSE,
// hyperparameters, the preflight's rendered examples with the loss mask, cancel / pause / resume.
import { followEvents, get, post } from '../api.js';
import { LossChart } from '../chart.js';
import { clear, duration, errorBox, h, num, statusBadge, table, toast, when } from '../dom.js';
import { samplesView } from './samples.js';

const TERMINAL = ['succeeded', 'failed', 'cancelled'];
const KIND_PATHS = { fine_tuning: '/v1/fine_tuning/jobs', generation: '/v1/generation/jobs', eval: '/v1/evals/jobs' };
const OPENAI_ONLY = ['n_epochs', 'learning_rate_multiplier'];

function jobPath(job) { return `${KIND_PATHS[job.kind] || '/v1/jobs'}/${job.id}`; }

function progressView(job) {
  const p = job.progress || {};
  const box = h('div', { class: 'card', id: 'job-progress' }, h('h2', {}, 'Progress'));
  const percent = p.percent ?? (job.status === 'succeeded' ? 100 : 0);
  box.append(h('label', { for: 'progress-bar' }, `${num(percent, 3)}% — step ${p.step ?? 0} of ${p.total_steps ?? '?'}`),
    h('progress', { id: 'progress-bar', max: 100, value: percent }, `${percent}%`));
  const eta = job.estimated_finish ? duration(job.estimated_finish - Date.now() / 1000) : '—';
  box.append(h('p', {}, `ETA: ${eta}`, p.tokens_per_s ? ` · ${num(p.tokens_per_s, 3)} tokens/s` : '', p.tokens ? ` · ${p.tokens} tokens` : ''));
  if (job.queue_position) {
    box.append(h('p', { id: 'queue-info' }, `Queue position ${job.queue_position}`,
      job.estimated_start ? ` · estimated start ${when(job.estimated_start)} (in ${duration(job.estimated_start - Date.now() / 1000)})` : '',
      job.waiting_reason ? ` · ${job.waiting_reason}` : ''));
  }
  if (job.error) box.append(h('p', { class: 'error' }, `${job.error.code}: ${job.error.message}${job.error.param ? ` (field: ${job.error.param})` : ''}`));
  return box;
}

function actions(job, reload) {
  const act = (verb) => async () => {
    try { await post(`/v1/jobs/${job.id}/${verb}`); toast(`${verb} requested`); reload(); } catch (err) { toast(err.describe ? err.describe() : String(err)); }
  };
  const done = TERMINAL.includes(job.status);
  return h('div', { class: 'row', role: 'group', 'aria-label': 'Job actions' },
    h('button', { type: 'button', class: 'danger', disabled: done, onclick: act('cancel') }, 'Cancel'),
    h('button', { type: 'button', class: 'secondary', disabled: done || job.status === 'paused', onclick: act('pause') }, 'Pause'),
    h('button', { type: 'button', class: 'secondary', disabled: job.status !== 'paused', onclick: act('resume') }, 'Resume'));
}

function paramsTable(title, params) {
  const rows = Object.entries(params || {}).filter(([, v]) => v !== null && typeof v !== 'object');
  return h('div', { class: 'card' }, h('h2', {}, title), table([{ label: 'Name', value: (r) => r[0] }, { label: 'Value', value: (r) => String(r[1]) }], rows));
}

async function preflightFor(job, box) {
  clear(box).append(h('p', {}, 'Running a preflight on the training file…'));
  const hyperparameters = Object.fromEntries(Object.entries(job.hyperparameters).filter(([k]) => !OPENAI_ONLY.includes(k)));
  try {
    let pf = await post('/v1/preflight/jobs', { model: job.model, training_file: job.training_file, hyperparameters });
    while (!TERMINAL.includes(pf.status)) { await new Promise((r) => setTimeout(r, 1000)); pf = await get(`/v1/preflight/jobs/${pf.id}`); }
    clear(box).append(pf.status === 'succeeded' ? samplesView(pf.result) : errorBox(new Error(`preflight ${pf.status}`)));
  } catch (err) { clear(box).append(errorBox(err)); }
}

export async function render(view, [jobId]) {
  let job = await get(`/v1/jobs/${jobId}`);
  job = await get(jobPath(job), job.kind === 'eval' ? { include_report: false } : undefined);
  const head = h('div', {}), progress = h('div', {}), chart = job.kind === 'fine_tuning' ? new LossChart() : null;
  const events = h('ol', { class: 'events', id: 'events', 'aria-live': 'off', tabindex: 0, 'aria-label': 'Job events' });
  const draw = () => {
    clear(head).append(h('h1', {}, `${job.kind.replace('_', '-')} job `, h('code', {}, job.id)),
      h('p', {}, statusBadge(job.status), ` · model ${job.model || '—'} · created ${when(job.created_at)}`,
        job.fine_tuned_model ? h('span', {}, ' · adapter ', h('a', { href: '#/adapters' }, job.fine_tuned_model)) : '',
        job.kind === 'eval' ? h('span', {}, ' · ', h('a', { href: `#/evals/${job.id}` }, 'open the eval report')) : '',
        job.dataset_id ? h('span', {}, ' · ', h('a', { href: `#/datasets/${job.dataset_id}` }, 'open the dataset')) : ''),
      actions(job, reload));
    clear(progress).append(progressView(job));
  };
  const reload = async () => { try { job = await get(jobPath(job), job.kind === 'eval' ? { include_report: false } : undefined); draw(); } catch (err) { /* shown on next */ } };
  draw();
  view.append(head, progress);
  if (chart) {
    view.append(chart.el);
    try { for (const c of (await get(`/v1/fine_tuning/jobs/${job.id}/checkpoints`, { limit: 100 })).data) chart.addCheckpoint(c.step_number); } catch (err) { /* none */ }
  }
  view.append(h('div', { class: 'card' }, h('h2', {}, 'Events'), events));
  if (job.kind === 'fine_tuning') {
    view.append(paramsTable('Hyperparameters', job.hyperparameters));
    const box = h('div', { id: 'samples' }, h('button', { type: 'button', class: 'secondary', onclick: () => preflightFor(job, box) }, 'Show rendered examples and loss mask'));
    view.append(h('div', { class: 'card' }, h('h2', {}, 'Rendered examples'), box));
  } else if (job.kind === 'preflight' && job.result) {
    view.append(h('div', { class: 'card' }, h('h2', {}, 'Rendered examples'), samplesView(job.result)));
  } else if (job.config) {
    view.append(paramsTable('Configuration', job.config));
  }
  const source = followEvents(job.id, (ev) => {
    events.append(h('li', {}, `${new Date(ev.created_at * 1000).toLocaleTimeString()} [${ev.type}] ${ev.message}`));
    events.scrollTop = events.scrollHeight;
    if (ev.type === 'metrics') { if (chart) chart.add(ev.data || {}); reload(); } // the progress bar follows each step
    if (chart && /^Checkpoint saved/.test(ev.message) && ev.data && ev.data.step !== undefined) chart.addCheckpoint(ev.data.step);
  }, () => reload());
  const timer = setInterval(() => { if (!TERMINAL.includes(job.status)) reload(); }, 2000);
  return () => { source.close(); clearInterval(timer); };
}
