// A loss chart drawn in SVG: train and validation loss over steps, checkpoints as dashed vertical lines.
import { h } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 640, H = 260, PAD = { l: 48, r: 12, t: 12, b: 32 };

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

export class LossChart {
  constructor() {
    this.train = []; this.valid = []; this.checkpoints = [];
    this.svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'loss-title loss-desc', id: 'loss-chart' });
    this.desc = h('p', { id: 'loss-desc', class: 'hint' });
    this.el = h('figure', { class: 'chart card' }, h('figcaption', { id: 'loss-title' }, 'Loss over steps'),
      h('p', { class: 'legend' }, h('span', {}, h('span', { class: 'sw sw-train' }), 'train'),
        h('span', {}, h('span', { class: 'sw sw-valid' }), 'validation'), h('span', {}, '┆ checkpoint')),
      this.svg, this.desc);
    this.draw();
  }

  // One metrics event's data ({step, train_loss, valid_loss}); a point per step, the latest wins.
  add(data) {
    if (data.step === undefined) return;
    const put = (list, v) => {
      if (typeof v !== 'number') return;
      const i = list.findIndex((p) => p[0] === data.step);
      if (i >= 0) list[i] = [data.step, v]; else list.push([data.step, v]);
      list.sort((a, b) => a[0] - b[0]);
    };
    put(this.train, data.train_loss ?? data.loss);
    put(this.valid, data.valid_loss ?? data.eval_loss);
    this.draw();
  }

  addCheckpoint(step) { if (!this.checkpoints.includes(step)) { this.checkpoints.push(step); this.draw(); } }

  describe() {
    const last = this.train.length ? this.train[this.train.length - 1][1].toFixed(4) : '—';
    return this.train.length || this.valid.length
      ? `${this.train.length} train and ${this.valid.length} validation points; latest train loss ${last}; `
        + `checkpoints at steps ${this.checkpoints.join(', ') || 'none yet'}.`
      : 'No loss reported yet.';
  }

  draw() {
    while (this.svg.firstChild) this.svg.removeChild(this.svg.firstChild);
    Object.assign(this.svg.dataset, { trainPoints: this.train.length, validPoints: this.valid.length, checkpoints: this.checkpoints.length });
    this.desc.textContent = this.describe();
    const all = [...this.train, ...this.valid];
    const steps = [...all.map((p) => p[0]), ...this.checkpoints];
    const x0 = Math.min(0, ...steps), x1 = Math.max(1, ...steps);
    const ys = all.map((p) => p[1]);
    const y0 = ys.length ? Math.min(...ys) * 0.95 : 0, y1 = ys.length ? Math.max(...ys) * 1.05 || 1 : 1;
    const X = (v) => PAD.l + ((v - x0) / (x1 - x0 || 1)) * (W - PAD.l - PAD.r);
    const Y = (v) => H - PAD.b - ((v - y0) / (y1 - y0 || 1)) * (H - PAD.t - PAD.b);
    this.svg.append(s('line', { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, stroke: '#4a4a5a' }),
      s('line', { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, stroke: '#4a4a5a' }),
      s('text', { x: W / 2, y: H - 4, 'text-anchor': 'middle', 'font-size': 12 }, 'step'));
    for (const t of [0, 0.5, 1]) {
      const v = y0 + (y1 - y0) * t, step = Math.round(x0 + (x1 - x0) * t);
      this.svg.append(s('text', { x: PAD.l - 4, y: Y(v) + 4, 'text-anchor': 'end', 'font-size': 11 }, v.toFixed(2)),
        s('text', { x: X(step), y: H - PAD.b + 14, 'text-anchor': 'middle', 'font-size': 11 }, String(step)));
    }
    for (const c of this.checkpoints) {
      this.svg.append(s('line', { x1: X(c), y1: PAD.t, x2: X(c), y2: H - PAD.b, stroke: '#7a4b00', 'stroke-dasharray': '4 3', class: 'checkpoint-mark' }));
    }
    for (const [series, color, cls] of [[this.train, '#4b2aad', 'pt-train'], [this.valid, '#c2410c', 'pt-valid']]) {
      if (!series.length) continue;
      this.svg.append(s('polyline', { points: series.map((p) => `${X(p[0])},${Y(p[1])}`).join(' '), fill: 'none', stroke: color, 'stroke-width': 2 }));
      for (const p of series) this.svg.append(s('circle', { cx: X(p[0]), cy: Y(p[1]), r: 3, fill: color, class: cls }));
    }
  }
}
