// Chat with any base model, adapter or checkpoint the user may use: instruction, input and every decoding knob
// of Alpaca-LoRA's generate.py UI, streamed or not; the OpenAI request it sends is shown, ready to copy.
import { get, post, streamChat } from '../api.js';
import { clear, errorBox, field, h, toast } from '../dom.js';

const KNOBS = [['temperature', 'Temperature', 0.1, 0, 2, 0.05], ['top_p', 'Top p', 0.75, 0.01, 1, 0.01], ['top_k', 'Top k', 40, 0, 1000, 1],
  ['num_beams', 'Beams', 1, 1, 16, 1], ['max_tokens', 'Max tokens', 128, 1, 4096, 1]];

async function modelNames() {
  const names = (await get('/v1/models')).data.map((m) => m.id);
  try { // each adapter's checkpoints are models too
    for (const a of (await get('/v1/adapters')).data) names.push(...a.checkpoints);
  } catch (err) { /* adapters listed above are enough */ }
  return [...new Set(names)];
}

function requestBody(form) {
  const body = { model: form.model.value, messages: [] };
  if (form.input.value.trim()) body.messages.push({ role: 'system', content: form.input.value });
  body.messages.push({ role: 'user', content: form.instruction.value });
  for (const [name] of KNOBS) body[name] = Number(form[name].value);
  if (body.num_beams > 1) body.temperature = 0;
  if (form.stream.checked) body.stream = true;
  return body;
}

function snippet(body) {
  return `curl ${location.origin}/v1/chat/completions \\\n  -H "Authorization: Bearer $LORAFLEET_API_KEY" \\\n`
    + `  -H "Content-Type: application/json" \\\n  -d '${JSON.stringify(body, null, 2).replace(/'/g, "'\\''")}'`;
}

export async function render(view) {
  const models = await modelNames();
  const answer = h('output', { id: 'answer', class: 'answer', 'aria-live': 'polite' });
  const code = h('pre', { id: 'request-snippet' }, h('code', {}));
  const status = h('div', {});
  const form = h('form', { id: 'playground-form', class: 'card' },
    field('Model', h('select', { name: 'model', id: 'pg-model' }, models.map((m) => h('option', { value: m }, m)))),
    field('Instruction', h('textarea', { name: 'instruction', id: 'pg-instruction', required: true }, 'Tell me about alpacas.')),
    field('Input (optional)', h('textarea', { name: 'input', id: 'pg-input' })),
    h('div', { class: 'row' }, KNOBS.map(([name, label, value, min, max, step]) => field(label,
      h('input', { type: 'number', name, id: `pg-${name}`, value, min, max, step })))),
    h('div', {}, h('input', { type: 'checkbox', name: 'stream', id: 'pg-stream', checked: true, style: null }),
      h('label', { for: 'pg-stream', class: 'inline' }, ' Stream the answer')),
    h('button', { type: 'submit' }, 'Generate'));
  const showSnippet = () => { code.firstChild.textContent = snippet(requestBody(form)); };
  form.addEventListener('input', showSnippet);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = requestBody(form);
    showSnippet(); clear(status); answer.textContent = ''; delete answer.dataset.done; answer.dataset.chunks = 0;
    answer.setAttribute('aria-busy', 'true');
    try {
      if (body.stream) await streamChat(body, (delta) => { answer.textContent += delta; answer.dataset.chunks = Number(answer.dataset.chunks || 0) + 1; });
      else answer.textContent = (await post('/v1/chat/completions', body)).choices[0].message.content;
      answer.dataset.done = 'true';
    } catch (err) { status.append(errorBox(err)); }
    answer.removeAttribute('aria-busy');
  });
  const copy = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try { await navigator.clipboard.writeText(code.textContent); toast('Copied'); } catch (err) { toast('Select the text and copy it'); }
  } }, 'Copy request');
  view.append(h('h1', {}, 'Playground'), h('div', { class: 'grid' }, form,
    h('div', {}, h('div', { class: 'card' }, h('h2', {}, 'Answer'), answer, status),
      h('div', { class: 'card' }, h('h2', {}, 'The request (OpenAI API)'), code, copy))));
  showSnippet();
}
