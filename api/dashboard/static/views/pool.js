// The user's own usage (last 7 days); for admins also the pool: workers, queues and fair share.
import { ApiError, get } from '../api.js';
import { h, num, table, when } from '../dom.js';

async function usageView() {
  const start = Math.floor(Date.now() / 1000) - 7 * 86400;
  const page = await get('/v1/usage', { start_time: start, bucket_width: '1d', group_by: 'kind' });
  const rows = page.data.flatMap((b) => b.results.map((r) => ({ day: b.start_time, ...r })));
  return h('div', { class: 'card', id: 'usage' }, h('h2', {}, 'Your usage (last 7 days)'), table([
    { label: 'Day', value: (r) => new Date(r.day * 1000).toLocaleDateString(), sort: (r) => r.day },
    { label: 'Kind', value: (r) => r.kind ?? 'all', sort: (r) => r.kind },
    { label: 'GPU s', value: (r) => num(r.gpu_seconds, 3), sort: (r) => r.gpu_seconds },
    { label: 'Compute s', value: (r) => num(r.compute_seconds, 3), sort: (r) => r.compute_seconds },
    { label: 'Tokens trained', value: (r) => r.tokens_trained, sort: (r) => r.tokens_trained },
    { label: 'Tokens generated', value: (r) => r.tokens_generated, sort: (r) => r.tokens_generated },
    { label: 'Teacher USD', value: (r) => num(r.teacher_cost_usd, 3), sort: (r) => r.teacher_cost_usd },
  ], rows, { emptyText: 'No usage recorded in the last 7 days.' }));
}

function poolView(pool) {
  return h('div', { id: 'pool' },
    h('div', { class: 'card' }, h('h2', {}, 'Workers'), table([
      { label: 'Worker', value: (w) => h('code', {}, w.id), sort: (w) => w.id },
      { label: 'State', value: (w) => w.state, sort: (w) => w.state },
      { label: 'Device', value: (w) => `${w.device_kind} × ${w.slots}` },
      { label: 'Queues', value: (w) => w.queues.join(', ') },
      { label: 'Jobs', value: (w) => w.jobs.join(', ') || 'idle' },
      { label: 'Heartbeat', value: (w) => `${num(w.heartbeat_age_s, 2)}s ago`, sort: (w) => w.heartbeat_age_s },
    ], pool.workers, { emptyText: 'No workers registered.' })),
    h('div', { class: 'card' }, h('h2', {}, 'Queues'), h('p', {}, `${pool.pending.total} job(s) waiting`),
      table([{ label: 'Queue', value: (r) => r[0] }, { label: 'Waiting', value: (r) => r[1], sort: (r) => r[1] }], Object.entries(pool.pending.by_queue))),
    h('div', { class: 'card' }, h('h2', {}, 'Fair share'), table([
      { label: 'User', value: (u) => u.name, sort: (u) => u.name },
      { label: 'Weight', value: (u) => num(u.weight, 3), sort: (u) => u.weight },
      { label: 'Share', value: (u) => `${num(100 * u.share, 3)}%`, sort: (u) => u.share },
      { label: 'Running', value: (u) => u.running_jobs, sort: (u) => u.running_jobs },
      { label: 'Waiting', value: (u) => u.pending_jobs, sort: (u) => u.pending_jobs },
      { label: 'GPU h today', value: (u) => num(u.usage.gpu_hours_today, 3), sort: (u) => u.usage.gpu_hours_today },
    ], pool.users)));
}

export async function render(view, params, state) {
  view.append(h('h1', {}, 'Pool & usage'), await usageView());
  if (state.user && state.user.is_admin) {
    try { view.append(poolView(await get('/v1/pool'))); } catch (err) { if (!(err instanceof ApiError)) throw err; }
  }
  view.append(h('p', { class: 'hint' }, `Updated ${when(Math.floor(Date.now() / 1000))}`));
  return null;
}
