// Every job of the user, whatever its kind: live status, filters by kind and status, search by id or suffix;
// and a form that submits a fine-tuning job (upload a file or name a file / dataset id).
import { get, post, request } from '../api.js';
import { clear, errorBox, field, h, statusBadge, table, toast, when } from '../dom.js';

const KINDS = ['fine_tuning', 'generation', 'eval', 'batch', 'preflight', 'export'];
const STATUSES = ['validating_files', 'queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled'];
const NUMBER_HP = [['num_epochs', 'Epochs', 1], ['learning_rate', 'Learning rate', 0.0003], ['batch_size', 'Batch size', 8],
  ['micro_batch_size', 'Micro-batch size', 4], ['cutoff_len', 'Cutoff length (tokens)', 256], ['lora_r', 'LoRA rank', 8],
  ['save_steps', 'Checkpoint every N steps (0: spread)', 0], ['val_set_size', 'Validation rows held out (<1: fraction)', 0],
  ['warmup_steps', 'Warmup steps', 0]];

async function allJobs(kind) {
  const out = [];
  let after = null;
  for (let i = 0; i < 5; i++) { // up to 500 jobs
    const page = await get('/v1/jobs', { kind, after, limit: 100 });
    out.push(...page.data);
    if (!page.has_more) break;
    after = page.last_id;
  }
  return out;
}

function select(id, label, options) {
  return field(label, h('select', { id }, h('option', { value: '' }, 'any'), options.map((o) => h('option', { value: o }, o))));
}

function suffixOf(job) { return (job.suffix || job.fine_tuned_model || (job.metadata && job.metadata.name) || ''); }

function jobsTable(rows) {
  return table([
    { label: 'Job', value: (j) => h('a', { href: `#/jobs/${j.id}` }, j.id), sort: (j) => j.id },
    { label: 'Kind', value: (j) => j.kind, sort: (j) => j.kind },
    { label: 'Status', value: (j) => statusBadge(j.status), sort: (j) => j.status },
    { label: 'Model', value: (j) => suffixOf(j) || j.model || '—', sort: (j) => j.model },
    { label: 'Progress', value: (j) => (j.progress && j.progress.percent != null ? `${j.progress.percent}%` : '—') },
    { label: 'Created', value: (j) => when(j.created_at), sort: (j) => j.created_at },
  ], rows, { caption: `${rows.length} job(s)`, emptyText: 'No jobs match.' });
}

function fineTuneForm(models, onCreated) {
  const fileInput = h('input', { id: 'ft-upload', type: 'file', accept: '.jsonl,.json,.csv,.parquet' });
  const sourceInput = h('input', { id: 'ft-source', type: 'text', placeholder: 'file-… or ds-…' });
  const modelSelect = h('select', { id: 'ft-model', required: true }, models.map((m) => h('option', { value: m.id }, m.id)));
  const suffix = h('input', { id: 'ft-suffix', type: 'text', pattern: '[A-Za-z0-9_.\\-]*', maxlength: 64 });
  const hp = NUMBER_HP.map(([name, label, value]) => [name, h('input', { id: `ft-${name}`, type: 'number', step: 'any', min: 0, value })]);
  const out = h('div', { 'aria-live': 'polite' });
  const submit = async (event) => {
    event.preventDefault();
    clear(out);
    try {
      let trainingFile = sourceInput.value.trim();
      if (fileInput.files.length) {
        const form = new FormData();
        form.append('purpose', 'fine-tune'); form.append('file', fileInput.files[0]);
        trainingFile = (await request('POST', '/v1/files', { form })).id;
      }
      if (!trainingFile) throw new Error('Choose a training file to upload, or give a file or dataset id.');
      const hyperparameters = Object.fromEntries(hp.filter(([, el]) => el.value !== '').map(([n, el]) => [n, Number(el.value)]));
      hyperparameters.logging_steps = 1;
      const job = await post('/v1/fine_tuning/jobs', { model: modelSelect.value, training_file: trainingFile,
        suffix: suffix.value || undefined, method: { type: 'supervised', supervised: { hyperparameters } } });
      toast(`Submitted ${job.id}`);
      onCreated(job);
    } catch (err) { out.append(errorBox(err)); }
  };
  return h('details', { class: 'card' }, h('summary', {}, 'New fine-tuning job'),
    h('form', { id: 'ft-form', onsubmit: submit },
      h('div', { class: 'row' }, field('Base model', modelSelect), field('Suffix', suffix)),
      h('div', { class: 'row' }, field('Upload a training file (JSONL)', fileInput), field('…or a file / dataset id', sourceInput)),
      h('div', { class: 'row' }, hp.map(([, el], i) => field(NUMBER_HP[i][1], el))),
      h('button', { type: 'submit' }, 'Start fine-tuning'), out));
}

export async function render(view) {
  const kind = select('filter-kind', 'Kind', KINDS);
  const status = select('filter-status', 'Status', STATUSES);
  const search = field('Search id or suffix', h('input', { id: 'filter-search', type: 'search' }));
  const list = h('div', { id: 'jobs-list' });
  const models = (await get('/v1/models')).data.filter((m) => m.kind !== 'adapter');
  let rows = [];
  const draw = () => {
    const s = status.querySelector('select').value, q = search.querySelector('input').value.trim().toLowerCase();
    const shown = rows.filter((j) => (!s || j.status === s) && (!q || j.id.toLowerCase().includes(q) || suffixOf(j).toLowerCase().includes(q)));
    clear(list).append(jobsTable(shown));
  };
  const load = async () => {
    try { rows = await allJobs(kind.querySelector('select').value || undefined); draw(); } catch (err) { clear(list).append(errorBox(err)); }
  };
  kind.querySelector('select').addEventListener('change', load);
  status.querySelector('select').addEventListener('change', draw);
  search.querySelector('input').addEventListener('input', draw);
  view.append(h('h1', {}, 'Jobs'), fineTuneForm(models, (job) => { location.hash = `#/jobs/${job.id}`; }),
    h('div', { class: 'card' }, h('div', { class: 'row' }, kind, status, search)), list);
  await load();
  const timer = setInterval(load, 3000); // live status
  return () => clearInterval(timer);
}
