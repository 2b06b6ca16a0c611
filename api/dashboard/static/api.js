// The dashboard's only way to the server: the public /v1 endpoints, with the session cookie (sent by the
// browser, unreadable here) and the session's CSRF token on every request that changes state.
let csrfToken = null;
export function setCsrfToken(token) { csrfToken = token; }

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status; this.code = e.code; this.param = e.param; this.line = e.line;
  }
  describe() {
    return [this.message, this.param ? `(field: ${this.param})` : '', this.line ? `(line ${this.line})` : '']
      .filter(Boolean).join(' ');
  }
}

export function url(path, query) {
  const u = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  return u.pathname + u.search;
}

export async function request(method, path, { json, form, query, raw } = {}) {
  const headers = {};
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let body;
  if (json !== undefined) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  if (form !== undefined) body = form;
  const r = await fetch(url(path, query), { method, headers, body, credentials: 'same-origin' });
  if (raw) { if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null)); return r; }
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) {
    if (r.status === 401 && !path.startsWith('/v1/web/session')) window.dispatchEvent(new Event('lorafleet:signed-out'));
    throw new ApiError(r.status, data);
  }
  return data;
}

export const get = (path, query) => request('GET', path, { query });
export const post = (path, json) => request('POST', path, { json });
export const del = (path) => request('DELETE', path);

// Server-sent events of a job; onEvent(event) per job event, onEnd(status) once the job has ended.
export function followEvents(jobId, onEvent, onEnd) {
  const source = new EventSource(`/v1/jobs/${encodeURIComponent(jobId)}/events/stream`);
  // Each event arrives named by its type (``event: metrics``...): one listener per type the workers emit.
  const types = ['message', 'metrics', 'checkpoint', 'status', 'warning', 'error', 'info'];
  for (const t of types) source.addEventListener(t, (m) => onEvent(JSON.parse(m.data)));
  source.addEventListener('end', (m) => { source.close(); onEnd && onEnd(JSON.parse(m.data).status); });
  return source;
}

// Stream a chat completion; onDelta(text) per chunk; returns the whole text.
export async function streamChat(body, onDelta) {
  const r = await request('POST', '/v1/chat/completions', { json: body, raw: true });
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '', text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      for (const line of block.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const payload = line.slice(5).trim();
        if (payload === '[DONE]') return text;
        const chunk = JSON.parse(payload);
        if (chunk.error) throw new ApiError(500, chunk);
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content;
        if (delta) { text += delta; onDelta(delta); }
      }
    }
  }
  return text;
}
