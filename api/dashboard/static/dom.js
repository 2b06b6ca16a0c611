// Small DOM helpers: elements are built with h() (text is always text, never parsed as HTML).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

export function when(unix) { return unix ? new Date(unix * 1000).toLocaleString() : '—'; }

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function num(v, digits = 4) { return typeof v === 'number' ? Number(v.toPrecision(digits)).toString() : (v ?? '—'); }

export function statusBadge(status) { return h('span', { class: `status status-${status}` }, status); }

// A table of rows; columns: [{label, value(row) -> Node|string, sort(row) -> comparable}]. Sortable headers.
export function table(columns, rows, { caption, emptyText = 'Nothing here yet.' } = {}) {
  const wrap = h('div', { class: 'table-wrap' });
  let order = { index: -1, dir: 1 };
  const render = () => {
    let shown = rows.slice();
    if (order.index >= 0) {
      const key = columns[order.index].sort;
      shown.sort((a, b) => { const x = key(a), y = key(b); return (x === y ? 0 : (x ?? -Infinity) > (y ?? -Infinity) ? 1 : -1) * order.dir; });
    }
    const head = h('tr', {}, columns.map((c, i) => h('th', { scope: 'col', 'aria-sort': order.index === i ? (order.dir > 0 ? 'ascending' : 'descending') : null },
      c.sort ? h('button', { type: 'button', onclick: () => { order = { index: i, dir: order.index === i ? -order.dir : -1 }; render(); } }, c.label) : c.label)));
    const body = shown.length ? shown.map((r) => h('tr', {}, columns.map((c) => h('td', {}, c.value(r)))))
      : [h('tr', {}, h('td', { colspan: columns.length }, emptyText))];
    clear(wrap).append(h('table', {}, caption ? h('caption', { class: 'hint' }, caption) : null, h('thead', {}, head), h('tbody', {}, body)));
  };
  render();
  return wrap;
}

export function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text; t.classList.add('show');
  clearTimeout(toast.timer); toast.timer = setTimeout(() => t.classList.remove('show'), 3000);
}

export function errorBox(err) { return h('p', { class: 'error', role: 'alert' }, err.describe ? err.describe() : String(err)); }

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', {}, h('label', { for: id }, label), input, hint ? h('p', { class: 'hint' }, hint) : null);
}
