// The dashboard's shell: sign in (an API key exchanged for a session cookie), the hash router, sign out.
import { ApiError, get, request, setCsrfToken } from './api.js';
import { clear, errorBox, h } from './dom.js';
import * as adapters from './views/adapters.js';
import * as datasets from './views/datasets.js';
import * as evals from './views/evals.js';
import * as jobDetail from './views/job_detail.js';
import * as jobs from './views/jobs.js';
import * as playground from './views/playground.js';
import * as pool from './views/pool.js';

const ROUTES = [
  [/^#\/jobs\/([^/]+)$/, jobDetail], [/^#\/jobs$/, jobs], [/^#\/datasets(?:\/([^/]+))?$/, datasets],
  [/^#\/adapters$/, adapters], [/^#\/evals(?:\/([^/]+))?$/, evals], [/^#\/playground$/, playground], [/^#\/pool$/, pool],
];
const state = { user: null, cleanup: null };

function showSignIn(message) {
  state.user = null; setCsrfToken(null);
  document.getElementById('topbar').hidden = true;
  document.getElementById('view').hidden = true;
  document.getElementById('sign-in-view').hidden = false;
  document.getElementById('sign-in-error').textContent = message || '';
  document.getElementById('api-key').focus();
}

function signedIn(session) {
  state.user = session.user; setCsrfToken(session.csrf_token);
  document.getElementById('sign-in-view').hidden = true;
  document.getElementById('topbar').hidden = false;
  document.getElementById('view').hidden = false;
  document.getElementById('whoami').textContent = `${session.user.name}${session.user.is_admin ? ' (admin)' : ''}`;
  if (!location.hash || location.hash === '#') location.hash = '#/jobs'; else route();
}

async function route() {
  if (!state.user) return;
  if (state.cleanup) { state.cleanup(); state.cleanup = null; }
  const view = clear(document.getElementById('view'));
  for (const a of document.querySelectorAll('.top nav a')) {
    a.toggleAttribute('aria-current', location.hash.startsWith(a.getAttribute('href')));
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
  for (const [pattern, module] of ROUTES) {
    const m = location.hash.match(pattern);
    if (m) {
      // Each visit renders into its own container; a visit overtaken by a newer one (the user clicked on
      // before the data came) is dropped with its timers, never mixed into the page.
      const visit = state.visit = (state.visit || 0) + 1, container = h('div');
      view.append(container);
      let cleanup = null;
      try { cleanup = (await module.render(container, m.slice(1), state)) || null; } catch (err) { container.append(errorBox(err)); }
      if (visit !== state.visit) { container.remove(); if (cleanup) cleanup(); } else state.cleanup = cleanup;
      return;
    }
  }
  location.hash = '#/jobs';
}

async function onSignIn(event) {
  event.preventDefault();
  const input = document.getElementById('api-key');
  const key = input.value.trim();
  input.value = ''; // the key leaves the page at once: the cookie stands for it from now on
  try {
    signedIn(await request('POST', '/v1/web/session', { json: { api_key: key } }));
  } catch (err) {
    showSignIn(err instanceof ApiError ? err.describe() : String(err));
  }
}

async function onSignOut() {
  try { await request('DELETE', '/v1/web/session'); } catch (err) { /* already ended */ }
  location.hash = '';
  showSignIn('Signed out.');
}

document.addEventListener('DOMContentLoaded', async () => {
  document.getElementById('sign-in-form').addEventListener('submit', onSignIn);
  document.getElementById('sign-out').addEventListener('click', onSignOut);
  window.addEventListener('hashchange', route);
  window.addEventListener('lorafleet:signed-out', () => showSignIn('Your session ended; sign in again.'));
  try { signedIn(await get('/v1/web/session')); } catch (err) { showSignIn(''); }
});
export { h };
