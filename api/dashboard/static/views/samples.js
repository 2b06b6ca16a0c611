// The preflight's rendered examples: the masked prompt (no loss) beside the trained tokens (loss taken).
import { h, num } from '../dom.js';

export function samplesView(report) {
  const samples = (report && report.samples) || [];
  const summary = h('p', {}, `${report.n_examples ?? '?'} examples · ${report.total_tokens ?? '?'} tokens · `,
    `${report.trainable_tokens ?? '?'} trained · ${report.n_over_cutoff ?? 0} over cutoff · about ${num(report.estimated_steps, 3)} steps`);
  const legend = h('p', { class: 'hint' }, h('span', { class: 'masked' }, 'grey: masked (no loss)'), ' · ', h('span', { class: 'trained' }, 'green: trained'));
  return h('div', { class: 'samples' }, summary, legend, samples.map((s) => h('figure', { class: 'sample' },
    h('figcaption', {}, `Line ${s.line}: ${s.n_tokens} tokens, ${s.n_masked_tokens} masked, ${s.n_trained_tokens} trained${s.truncated ? ' (truncated)' : ''}`),
    h('pre', {}, h('span', { class: 'masked', title: 'masked: no loss' }, s.masked_text), h('span', { class: 'trained', title: 'trained: loss taken' }, s.trained_text)))));
}
