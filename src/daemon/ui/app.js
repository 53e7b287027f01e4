// eddy's web UI: plain JavaScript, no framework, no build step. It talks only to the
// daemon's REST API (docs/rest-api.md) and builds every element through the DOM (text
// from the server goes into text nodes and attributes, never through innerHTML).
//
// Routes (in the fragment): `#/` the job list and the submit form, `#/jobs/<id>` a job,
// `#/jobs/<id>/preview` its result preview. Each view polls what it shows and stops
// polling when the route changes.
'use strict';

(function () {
  const POLL_MS = 1000;
  const HISTORY_POINTS = 300; // five minutes at one poll a second
  const TERMINAL = new Set(['FINISHED', 'CANCELED', 'FAILED']);
  const TOKEN_KEY = 'eddy.token';
  const PREFILL_KEY = 'eddy.prefill';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#2563eb', '#db2777', '#059669', '#d97706', '#7c3aed', '#0891b2', '#dc2626', '#4b5563'];

  // ---------------------------------------------------------------- DOM helpers

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') el.textContent = String(value);
      else if (key === 'testid') el.setAttribute('data-testid', String(value));
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** An HTML element: `h('td', {class: 'num', text: '12'})`, children appended as text or nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    return append(el, children);
  }

  /** An SVG element, as `h`. */
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    return append(el, children);
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function setText(el, text) {
    const value = String(text);
    if (el.textContent !== value) el.textContent = value;
  }

  // ---------------------------------------------------------------- formatting

  function fmtInt(n) {
    return n === null || n === undefined ? '—' : Math.round(Number(n)).toLocaleString('en-US');
  }

  /** 3 significant digits with k/M/G: 24000 → "24.0k". */
  function fmtCompact(n) {
    if (n === null || n === undefined || !isFinite(n)) return '—';
    const a = Math.abs(n);
    if (a < 1000) return a < 10 && a !== Math.round(a) ? n.toFixed(1) : String(Math.round(n));
    const units = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
    for (const [scale, unit] of units) {
      if (a >= scale) {
        const v = n / scale;
        return (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)) + unit;
      }
    }
    return String(n);
  }

  function fmtRate(n) {
    return fmtCompact(Number(n)) + '/s';
  }

  function fmtMicros(us) {
    if (us === null || us === undefined || !isFinite(us)) return '—';
    if (us < 1000) return Math.round(us) + ' µs';
    if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 2 : 1) + ' ms';
    return (us / 1e6).toFixed(2) + ' s';
  }

  function fmtBytes(b) {
    if (b === null || b === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Number(b);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[i];
  }

  function pad2(n) {
    return String(n).padStart(2, '0');
  }

  function fmtClock(ms) {
    const d = new Date(ms);
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }

  function fmtTime(ms) {
    if (ms === null || ms === undefined) return '—';
    const d = new Date(ms);
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + fmtClock(ms);
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return '—';
    if (ms < 1000) return Math.round(ms) + ' ms';
    let sec = Math.floor(ms / 1000);
    if (sec < 60) return (ms / 1000).toFixed(1) + ' s';
    const d = Math.floor(sec / 86400);
    sec -= d * 86400;
    const hrs = Math.floor(sec / 3600);
    sec -= hrs * 3600;
    const min = Math.floor(sec / 60);
    sec -= min * 60;
    const parts = [];
    if (d) parts.push(d + 'd');
    if (d || hrs) parts.push(hrs + 'h');
    parts.push(min + 'm');
    if (!d) parts.push(sec + 's');
    return parts.join(' ');
  }

  function fmtPercent(ratio) {
    if (ratio === null || ratio === undefined || !isFinite(ratio)) return '—';
    if (ratio === 0) return '0%';
    return (ratio * 100).toFixed(ratio < 0.1 ? 1 : 0) + '%';
  }

  /** Flink's backpressure levels: OK up to 10%, LOW up to 50%, HIGH above. */
  function pressureLevel(ratio) {
    if (!(ratio > 0.1)) return 'ok';
    return ratio <= 0.5 ? 'low' : 'high';
  }

  function stateBadge(state, testid) {
    const st = String(state || 'UNKNOWN');
    return h('span', { class: 'state state-' + st.toLowerCase(), testid, text: st });
  }

  // ---------------------------------------------------------------- REST client

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let tokenPrompt = null; // the pending prompt, shared by concurrent 401s

  /**
   * Calls the REST API (paths relative to the page, so the UI also works behind a proxy
   * prefix). Answers the parsed JSON; throws ApiError with the server's message. A 401
   * asks for the bearer token, keeps it in sessionStorage and retries.
   */
  async function api(method, path, body) {
    for (let attempt = 0; ; attempt += 1) {
      const headers = { Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) headers.Authorization = 'Bearer ' + token;
      let res;
      try {
        res = await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          cache: 'no-store',
        });
      } catch (e) {
        throw new ApiError(0, 'the daemon does not answer (' + e.message + ')');
      }
      const text = await res.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch (e) {
        data = null;
      }
      const message = (data && (data.message || (Array.isArray(data.errors) && data.errors.join('; '))))
        || (res.status + ' ' + res.statusText);
      if (res.status === 401 && attempt < 3) {
        const given = await askToken(token ? 'The daemon refused the token (' + message + '). Enter the bearer token:'
          : 'This daemon requires a bearer token for changes (' + message + '). Enter it:');
        if (given === null) throw new ApiError(401, message);
        sessionStorage.setItem(TOKEN_KEY, given);
        continue;
      }
      if (!res.ok) throw new ApiError(res.status, message);
      return data;
    }
  }

  function askToken(question) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const input = h('input', { type: 'password', autocomplete: 'off', testid: 'token-input', 'aria-label': 'bearer token' });
      let overlay = null;
      const done = (value) => {
        overlay.remove();
        tokenPrompt = null;
        resolve(value);
      };
      const form = h('form', {
        class: 'dialog',
        testid: 'token-dialog',
        onsubmit: (ev) => {
          ev.preventDefault();
          done(input.value.trim() || null);
        },
      },
      h('h3', { text: 'Bearer token' }),
      h('p', { text: question }),
      input,
      h('div', { class: 'dialog-buttons' },
        h('button', { type: 'button', class: 'btn', testid: 'token-cancel', onclick: () => done(null), text: 'Cancel' }),
        h('button', { type: 'submit', class: 'btn btn-primary', testid: 'token-ok', text: 'Use token' })));
      overlay = h('div', { class: 'overlay' }, form);
      document.body.appendChild(overlay);
      input.focus();
    });
    return tokenPrompt;
  }

  // ---------------------------------------------------------------- polling, banner

  /** Runs `fn` now and again `ms` after each run ends (no overlap) until stopped. */
  function poller(fn, ms) {
    let stopped = false;
    let timer = null;
    let running = false;
    async function tick() {
      timer = null;
      if (stopped) return;
      running = true;
      try {
        await fn();
      } catch (e) {
        console.error(e);
      }
      running = false;
      if (!stopped) timer = setTimeout(tick, typeof ms === 'function' ? ms() : ms);
    }
    tick();
    return {
      stop() {
        stopped = true;
        if (timer) clearTimeout(timer);
      },
      /** Runs again now (after a change), unless a run is in flight. */
      kick() {
        if (!stopped && !running && timer) {
          clearTimeout(timer);
          tick();
        }
      },
    };
  }

  const banner = document.getElementById('banner');

  function reportFetch(err) {
    if (err && err.status === 0) {
      setText(banner, 'Lost contact with the daemon — retrying. ' + err.message);
      banner.classList.remove('hidden');
    } else {
      banner.classList.add('hidden');
    }
  }

  // ---------------------------------------------------------------- charts

  function niceStep(range, count) {
    const raw = range / Math.max(1, count);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map((x) => x * 1000);

  /**
   * A line chart drawn in SVG. `render(series)` redraws it: series are
   * `{name, color, points: [[x, y|null], ...]}`; a null y breaks the line.
   */
  function lineChart(opts) {
    const legend = h('div', { class: 'legend', testid: opts.testid + '-legend' });
    const plot = h('div', { class: 'chart-plot' });
    const el = h('div', { class: 'chart', testid: opts.testid });
    const yFormat = opts.yFormat || fmtCompact;
    const xFormat = opts.xFormat || fmtClock;
    // A log scale (toggled) keeps small series readable next to big ones.
    let log = false;
    let lastSeries = [];
    const head = h('div', { class: 'chart-head' }, legend);
    if (opts.logToggle) {
      const box = h('input', { type: 'checkbox', testid: opts.testid + '-log' });
      box.addEventListener('change', () => {
        log = box.checked;
        render(lastSeries);
      });
      head.appendChild(h('label', { class: 'chart-option' }, box, ' log scale'));
    }
    el.append(head, plot);

    function render(series) {
      lastSeries = series;
      clear(legend);
      clear(plot);
      for (const sr of series) {
        const last = [...sr.points].reverse().find((p) => p[1] !== null && isFinite(p[1]));
        legend.appendChild(h('span', { class: 'legend-item' },
          h('span', { class: 'swatch', style: 'background:' + sr.color }),
          h('span', { text: sr.name }),
          h('span', { class: 'legend-value', text: last ? yFormat(last[1]) : '—' })));
      }
      const pts = series.flatMap((sr) => sr.points.filter((p) => p[1] !== null && isFinite(p[1])));
      if (!pts.length) {
        plot.appendChild(h('div', { class: 'chart-empty', text: opts.emptyText || 'Waiting for data…' }));
        return;
      }
      const width = Math.max(300, Math.floor(plot.clientWidth || 560));
      const height = opts.height || 200;
      const m = { l: 62, r: 12, t: 10, b: 24 };
      const iw = width - m.l - m.r;
      const ih = height - m.t - m.b;
      let x0 = Math.min(...pts.map((p) => p[0]));
      let x1 = Math.max(...pts.map((p) => p[0]));
      if (x1 <= x0) {
        x0 -= opts.xKind === 'time' ? 1000 : 1;
        x1 += opts.xKind === 'time' ? 1000 : 1;
      }
      // Values are mapped through `tr` (identity, or log10 with everything under 1 at 1).
      const tr = log ? (v) => Math.log10(Math.max(1, v)) : (v) => v;
      let yMin = Math.min(0, ...pts.map((p) => tr(p[1])));
      let yMaxRaw = Math.max(...pts.map((p) => tr(p[1])));
      if (yMaxRaw <= yMin) yMaxRaw = yMin + 1;
      const yStep = log ? 1 : niceStep(yMaxRaw - yMin, 4);
      yMin = Math.floor(yMin / yStep) * yStep;
      const yMax = Math.ceil(yMaxRaw / yStep) * yStep;
      const X = (x) => m.l + ((x - x0) / (x1 - x0)) * iw;
      const Y = (y) => m.t + ih - ((tr(y) - yMin) / (yMax - yMin)) * ih;
      const Yt = (ty) => m.t + ih - ((ty - yMin) / (yMax - yMin)) * ih;

      const svg = s('svg', { width, height, class: 'chart-svg', role: 'img', 'aria-label': opts.label || opts.testid });
      for (let ty = yMin; ty <= yMax + yStep / 2; ty += yStep) {
        svg.appendChild(s('line', { x1: m.l, x2: width - m.r, y1: Yt(ty), y2: Yt(ty), class: 'grid' }));
        svg.appendChild(s('text', { x: m.l - 6, y: Yt(ty) + 4, class: 'tick', 'text-anchor': 'end', text: yFormat(log ? Math.pow(10, ty) : ty) }));
      }
      let xStep;
      if (opts.xKind === 'time') {
        xStep = TIME_STEPS.find((st) => (x1 - x0) / st <= 5) || 3600000;
      } else {
        xStep = Math.max(1, niceStep(x1 - x0, 5));
      }
      for (let x = Math.ceil(x0 / xStep) * xStep; x <= x1; x += xStep) {
        svg.appendChild(s('line', { x1: X(x), x2: X(x), y1: m.t + ih, y2: m.t + ih + 4, class: 'axis' }));
        const px = X(x);
        const anchor = px > width - m.r - 28 ? 'end' : px < m.l + 20 ? 'start' : 'middle';
        svg.appendChild(s('text', { x: px, y: height - 6, class: 'tick', 'text-anchor': anchor, text: xFormat(x) }));
      }
      svg.appendChild(s('line', { x1: m.l, x2: width - m.r, y1: m.t + ih, y2: m.t + ih, class: 'axis' }));
      series.forEach((sr) => {
        let d = '';
        let pen = false;
        let last = null;
        for (const [x, y] of sr.points) {
          if (y === null || !isFinite(y)) {
            pen = false;
            continue;
          }
          d += (pen ? 'L' : 'M') + X(x).toFixed(1) + ' ' + Y(y).toFixed(1);
          pen = true;
          last = [x, y];
        }
        if (d) svg.appendChild(s('path', { d, class: 'series', stroke: sr.color }));
        if (last) svg.appendChild(s('circle', { cx: X(last[0]), cy: Y(last[1]), r: 3, fill: sr.color }));
      });
      plot.appendChild(svg);
    }

    return { el, render };
  }

  function pushPoint(list, point) {
    list.push(point);
    if (list.length > HISTORY_POINTS) list.splice(0, list.length - HISTORY_POINTS);
  }

  // ---------------------------------------------------------------- the DAG

  const BOX_W = 204;
  const BOX_H = 102;
  const GAP_X = 112;
  const GAP_Y = 28;
  const PAD = 16;

  const DUMMY_H = 26; // the slot a long edge takes in a layer it crosses

  /**
   * A layered layout (Sugiyama-style): layers by longest path from a source (vertices
   * come in topological order), an edge that spans several layers gets a virtual slot in
   * each layer it crosses (so it runs between boxes, not through them), each layer is
   * ordered by the mean row of its inputs, and layers are centred on the tallest one.
   * Answers the vertices' boxes, each edge's waypoints and the drawing's size.
   */
  function layoutDag(vertices, edges) {
    const layer = new Map(vertices.map((v) => [v.id, 0]));
    for (let round = 0; round < vertices.length; round += 1) {
      let changed = false;
      for (const e of edges) {
        if (!layer.has(e.source) || !layer.has(e.target)) continue;
        const l = layer.get(e.source) + 1;
        if (l > layer.get(e.target)) {
          layer.set(e.target, l);
          changed = true;
        }
      }
      if (!changed) break;
    }
    const depth = vertices.length ? Math.max(...layer.values()) + 1 : 0;
    const layers = Array.from({ length: depth }, () => []);
    for (const v of vertices) layers[layer.get(v.id)].push({ key: 'v' + v.id, h: BOX_H });
    const chains = edges.map((e, k) => {
      if (!layer.has(e.source) || !layer.has(e.target)) return null;
      const chain = ['v' + e.source];
      for (let l = layer.get(e.source) + 1; l < layer.get(e.target); l += 1) {
        const key = 'd' + k + ':' + l;
        layers[l].push({ key, h: DUMMY_H });
        chain.push(key);
      }
      chain.push('v' + e.target);
      return chain;
    });
    const preds = new Map();
    for (const chain of chains) {
      if (!chain) continue;
      for (let i = 1; i < chain.length; i += 1) {
        if (!preds.has(chain[i])) preds.set(chain[i], []);
        preds.get(chain[i]).push(chain[i - 1]);
      }
    }
    const row = new Map();
    layers.forEach((slots) => {
      const key = (slot) => {
        const ins = (preds.get(slot.key) || []).filter((p) => row.has(p)).map((p) => row.get(p));
        return ins.length ? ins.reduce((a, b) => a + b, 0) / ins.length : Infinity;
      };
      const keyed = slots.map((slot, i) => [key(slot), i, slot]);
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      keyed.forEach(([, , slot], i) => {
        slots[i] = slot;
        row.set(slot.key, i);
      });
    });
    const extent = (slots) => slots.reduce((sum, slot) => sum + slot.h, 0) + Math.max(0, slots.length - 1) * GAP_Y;
    const tallest = Math.max(BOX_H, ...layers.map(extent));
    const slotPos = new Map();
    layers.forEach((slots, l) => {
      let y = PAD + (tallest - extent(slots)) / 2;
      for (const slot of slots) {
        slotPos.set(slot.key, { x: PAD + l * (BOX_W + GAP_X), y, h: slot.h });
        y += slot.h + GAP_Y;
      }
    });
    const pos = new Map(vertices.map((v) => [v.id, slotPos.get('v' + v.id)]));
    const routes = chains.map((chain) => (chain ? chain.map((k) => slotPos.get(k)) : null));
    return {
      pos,
      routes,
      width: PAD * 2 + depth * BOX_W + Math.max(0, depth - 1) * GAP_X,
      height: PAD * 2 + tallest,
    };
  }

  /** An SVG path through an edge's slots: curves in the gaps, straight across virtual slots. */
  function edgePath(route) {
    const first = route[0];
    let x = first.x + BOX_W;
    let y = first.y + first.h / 2;
    let d = `M${x} ${y}`;
    for (let i = 1; i < route.length; i += 1) {
      const slot = route[i];
      const last = i === route.length - 1;
      const nx = slot.x - (last ? 2 : 0);
      const ny = slot.y + slot.h / 2;
      const dx = Math.max(30, (nx - x) / 2);
      d += `C${x + dx} ${y} ${nx - dx} ${ny} ${nx} ${ny}`;
      x = nx;
      y = ny;
      if (!last) {
        x = slot.x + BOX_W;
        d += `L${x} ${y}`;
      }
    }
    return d;
  }

  function truncate(text, max) {
    const str = String(text);
    return str.length > max ? str.slice(0, max - 1) + '…' : str;
  }

  /** Draws the DAG; answers an updater that refreshes the numbers in place. */
  function drawDag(container, job) {
    const vertices = job.vertices || [];
    const edges = (job.plan && job.plan.edges) || [];
    const { pos, routes, width, height } = layoutDag(vertices, edges);
    const svg = s('svg', {
      class: 'dag', testid: 'dag', width, height, viewBox: '0 0 ' + width + ' ' + height, role: 'img',
      'aria-label': 'job graph',
    });
    svg.appendChild(s('defs', null,
      s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        s('path', { d: 'M0 0L10 5L0 10z', class: 'arrowhead' }))));
    edges.forEach((e, k) => {
      const route = routes[k];
      if (!route || route.some((slot) => !slot)) return;
      const strategy = String(e.ship_strategy || '');
      const labelW = Math.min(GAP_X - 8, 12 + strategy.length * 6.4);
      // The label sits in the first gap, halfway.
      const a = route[0];
      const b = route[1];
      const mx = (a.x + BOX_W + b.x) / 2;
      const my = (a.y + a.h / 2 + b.y + b.h / 2) / 2;
      svg.appendChild(s('g', { class: 'edge', testid: 'edge-' + e.source + '-' + e.target },
        s('title', { text: strategy }),
        s('path', { d: edgePath(route), 'marker-end': 'url(#arrow)' }),
        s('rect', { x: mx - labelW / 2, y: my - 9, width: labelW, height: 18, rx: 9, class: 'edge-label-bg' }),
        s('text', { x: mx, y: my + 4, 'text-anchor': 'middle', class: 'edge-label', testid: 'edge-' + e.source + '-' + e.target + '-strategy', text: truncate(strategy, 17) })));
    });
    const refs = new Map();
    for (const v of vertices) {
      const p = pos.get(v.id);
      const id = v.id;
      const ops = Array.isArray(v.operators) ? v.operators : [];
      const inRate = s('tspan', { class: 'v-rate', testid: 'vertex-' + id + '-in-rate' });
      const outRate = s('tspan', { class: 'v-rate', testid: 'vertex-' + id + '-out-rate' });
      const bar = s('rect', { x: 12, y: 86, height: 6, rx: 3, width: 0, class: 'bp-bar' });
      const bpText = s('text', { x: BOX_W - 12, y: 80, 'text-anchor': 'end', class: 'v-bp', testid: 'vertex-' + id + '-backpressure' });
      const box = s('rect', { x: 0, y: 0, width: BOX_W, height: BOX_H, rx: 8, class: 'v-box' });
      const g = s('g', { class: 'vertex', testid: 'vertex-' + id, transform: `translate(${p.x},${p.y})`, 'data-vertex': id },
        s('title', { text: v.name + (ops.length ? '\noperators: ' + ops.join(' → ') : '') }),
        box,
        s('text', { x: 12, y: 22, class: 'v-name', testid: 'vertex-' + id + '-name', text: truncate(v.name, Math.floor((BOX_W - 24) / 7.3)) }),
        s('text', { x: 12, y: 40, class: 'v-meta', testid: 'vertex-' + id + '-parallelism',
          text: 'parallelism ' + v.parallelism + (ops.length > 1 ? ' · ' + ops.length + ' operators' : '') }),
        s('text', { x: 12, y: 62 }, s('tspan', { class: 'v-label', text: 'in ' }), inRate),
        s('text', { x: BOX_W / 2 + 4, y: 62 }, s('tspan', { class: 'v-label', text: 'out ' }), outRate),
        s('text', { x: 12, y: 80, class: 'v-label', text: 'backpressure' }),
        bpText,
        s('rect', { x: 12, y: 86, height: 6, rx: 3, width: BOX_W - 24, class: 'bp-track' }),
        bar);
      svg.appendChild(g);
      refs.set(id, { g, inRate, outRate, bar, bpText });
    }
    clear(container).appendChild(svg);
    return function update(next) {
      // An ended job has no rates (the last ones measured would mislead).
      const ended = TERMINAL.has(next.state);
      for (const v of next.vertices || []) {
        const r = refs.get(v.id);
        if (!r) continue;
        const mt = v.metrics || {};
        const bp = ended ? 0 : Number(mt['backpressure-ratio'] || 0);
        setText(r.inRate, ended ? '—' : fmtRate(mt['records-in-per-second']));
        r.inRate.setAttribute('data-value', String(mt['records-in-per-second']));
        setText(r.outRate, ended ? '—' : fmtRate(mt['records-out-per-second']));
        r.outRate.setAttribute('data-value', String(mt['records-out-per-second']));
        setText(r.bpText, ended ? '—' : fmtPercent(bp));
        r.bpText.setAttribute('data-value', String(bp));
        r.bar.setAttribute('width', String(Math.max(0, Math.min(1, bp)) * (BOX_W - 24)));
        r.g.setAttribute('class', 'vertex bp-' + pressureLevel(bp));
      }
    };
  }

  function dagShape(job) {
    return JSON.stringify([(job.vertices || []).map((v) => [v.id, v.name, v.parallelism]), job.plan && job.plan.edges]);
  }

  // ---------------------------------------------------------------- savepoint operations

  // Savepoint/stop requests, per job, kept across views: the result shows when one
  // comes back to the job's page.
  const operations = new Map();
  let operationListener = null;

  function notifyOperation(jobId) {
    if (operationListener) operationListener(jobId);
  }

  async function followSavepoint(jobId, kind, requestId) {
    const op = { kind, requestId, status: 'IN_PROGRESS', location: null, error: null };
    operations.set(jobId, op);
    notifyOperation(jobId);
    const base = 'jobs/' + encodeURIComponent(jobId) + '/savepoints/' + encodeURIComponent(requestId);
    const deadline = Date.now() + 30 * 60 * 1000;
    while (Date.now() < deadline) {
      try {
        const r = await api('GET', base);
        const st = r && r.status && r.status.id;
        if (st === 'COMPLETED') {
          const operation = r.operation || {};
          if (operation.location) op.location = String(operation.location);
          else op.error = (operation['failure-cause'] && operation['failure-cause'].message) || 'the savepoint failed';
          op.status = 'COMPLETED';
          notifyOperation(jobId);
          return;
        }
      } catch (e) {
        if (e.status && e.status !== 0) {
          op.status = 'COMPLETED';
          op.error = e.message;
          notifyOperation(jobId);
          return;
        }
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    op.status = 'COMPLETED';
    op.error = 'no answer after 30 minutes';
    notifyOperation(jobId);
  }

  // ---------------------------------------------------------------- views

  let overviewPoll = null; // the header's counts; kicked when a job's state changes

  function card(title, testid, ...children) {
    return h('section', { class: 'card', testid }, title ? h('h2', { text: title }) : null, ...children);
  }

  function jobList(root) {
    const tbody = h('tbody');
    const count = h('span', { class: 'muted', testid: 'jobs-count' });
    const table = h('table', { class: 'table', testid: 'jobs-table' },
      h('thead', null, h('tr', null,
        h('th', { text: 'Job' }), h('th', { text: 'Name' }), h('th', { text: 'State' }),
        h('th', { text: 'Start time' }), h('th', { class: 'num', text: 'Duration' }))),
      tbody);
    const empty = h('p', { class: 'muted hidden', testid: 'jobs-empty', text: 'No jobs yet: submit one below.' });
    const listError = h('p', { class: 'error hidden', testid: 'jobs-error' });

    // The submit form.
    const jobInput = h('input', { id: 'submit-job', list: 'builtin-jobs', testid: 'submit-job', required: true, placeholder: 'copy', autocomplete: 'off' });
    const argsInput = h('textarea', {
      id: 'submit-args', testid: 'submit-args', rows: 6, spellcheck: 'false',
      placeholder: '--source\nnexmark://?events=1000000&rate=20000\n--sink\nprint:?format=csv',
    });
    const savepointInput = h('input', { id: 'submit-savepoint', testid: 'submit-savepoint', placeholder: '(optional) /state/savepoints/…', autocomplete: 'off' });
    const submitButton = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'submit-button', text: 'Submit' });
    const result = h('p', { class: 'form-result', testid: 'submit-result', 'aria-live': 'polite' });
    const jobNames = h('datalist', { id: 'builtin-jobs' }, ['copy', 'wordcount', 'nexmark'].map((j) => h('option', { value: j })));
    // The daemon may list the jobs it knows (built-in and registered ones).
    api('GET', 'overview').then((o) => {
      if (o && Array.isArray(o['job-names']) && o['job-names'].length) {
        clear(jobNames).append(...o['job-names'].map((j) => h('option', { value: String(j) })));
      }
    }, () => {});
    const form = h('form', { class: 'submit-form', testid: 'submit-form' },
      jobNames,
      h('label', { for: 'submit-job', text: 'Job' }), jobInput,
      h('label', { for: 'submit-args' }, 'Arguments ', h('span', { class: 'muted', text: '(one per line, exactly as `eddy run <job>` takes them)' })),
      argsInput,
      h('label', { for: 'submit-savepoint', text: 'Restore from savepoint' }), savepointInput,
      h('div', { class: 'form-actions' }, submitButton, result));
    const prefill = sessionStorage.getItem(PREFILL_KEY);
    if (prefill) {
      sessionStorage.removeItem(PREFILL_KEY);
      try {
        const p = JSON.parse(prefill);
        jobInput.value = p.job || '';
        argsInput.value = (p.args || []).join('\n');
        savepointInput.value = p.from_savepoint || '';
      } catch (e) {
        /* ignore a bad prefill */
      }
    }
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = {
        job: jobInput.value.trim(),
        args: argsInput.value.split('\n').map((a) => a.trim()).filter((a) => a.length > 0),
      };
      if (savepointInput.value.trim()) body.from_savepoint = savepointInput.value.trim();
      submitButton.disabled = true;
      result.className = 'form-result';
      setText(result, 'Submitting…');
      try {
        const r = await api('POST', 'jobs', body);
        setText(result, 'Submitted ' + r.id);
        location.hash = '#/jobs/' + encodeURIComponent(r.id);
      } catch (e) {
        result.className = 'form-result error';
        setText(result, e.message);
      } finally {
        submitButton.disabled = false;
      }
    });

    root.append(
      h('div', { class: 'page-head' }, h('h1', { text: 'Jobs' }), count),
      card(null, 'jobs-card', listError, table, empty),
      card('Submit a job', 'submit-card', form));

    let rowsKey = null;
    const rows = new Map();
    const poll = poller(async () => {
      let data;
      try {
        data = await api('GET', 'jobs');
        reportFetch(null);
        listError.classList.add('hidden');
      } catch (e) {
        reportFetch(e);
        if (e.status !== 0) {
          listError.classList.remove('hidden');
          setText(listError, e.message);
        }
        return;
      }
      const jobs = (data && data.jobs) || [];
      // Rows are rebuilt only when the list changes (focus and hover survive a poll).
      const key = jobs.map((j) => j.id).join(',');
      if (key !== rowsKey) {
        rowsKey = key;
        clear(tbody);
        rows.clear();
        for (const j of jobs) {
          const href = '#/jobs/' + encodeURIComponent(j.id);
          const cells = { state: stateBadge(j.state, 'job-state-' + j.id), name: h('a', { href }), start: h('td'), duration: h('td', { class: 'num' }) };
          tbody.appendChild(h('tr', { testid: 'job-row-' + j.id, 'data-job': j.id },
            h('td', null, h('a', { href, class: 'mono', testid: 'job-link-' + j.id, text: j.id })),
            h('td', { testid: 'job-name-' + j.id }, cells.name),
            h('td', null, cells.state), cells.start, cells.duration));
          rows.set(j.id, cells);
        }
      }
      for (const j of jobs) {
        const cells = rows.get(j.id);
        setText(cells.name, j.name);
        setText(cells.state, j.state);
        cells.state.className = 'state state-' + String(j.state).toLowerCase();
        setText(cells.start, fmtTime(j['start-time']));
        setText(cells.duration, fmtDuration(j.duration));
      }
      const running = jobs.filter((j) => !TERMINAL.has(j.state)).length;
      setText(count, jobs.length + ' job' + (jobs.length === 1 ? '' : 's') + ', ' + running + ' running');
      empty.classList.toggle('hidden', jobs.length > 0);
      table.classList.toggle('hidden', jobs.length === 0);
    }, POLL_MS * 2);
    return { stop: () => poll.stop() };
  }

  function jobPage(root, jobId) {
    const enc = encodeURIComponent(jobId);
    const hist = { latency: { p50: [], p99: [], p999: [] }, measured: false, rates: new Map(), seenRunning: false, ended: false };

    const title = h('h1', { testid: 'job-name' });
    const state = stateBadge('…', 'job-state');
    const meta = h('dl', { class: 'meta' });
    const metaField = (label, testid) => {
      const dd = h('dd', { testid });
      meta.append(h('dt', { text: label }), dd);
      return dd;
    };
    const idField = metaField('Job id', 'job-id');
    const startField = metaField('Started', 'job-start');
    const endField = metaField('Ended', 'job-end');
    const durationField = metaField('Duration', 'job-duration');
    const parField = metaField('Parallelism', 'job-parallelism');
    const restartsField = metaField('Restarts', 'job-restarts');
    const argsField = metaField('Arguments', 'job-args');
    const failure = h('pre', { class: 'failure hidden', testid: 'job-failure' });

    const btnSavepoint = h('button', { class: 'btn', testid: 'btn-savepoint', text: 'Savepoint', title: 'Take a savepoint; the job keeps running' });
    const btnStop = h('button', { class: 'btn btn-primary', testid: 'btn-stop', text: 'Stop', title: 'Stop with a savepoint: the job ends FINISHED' });
    const btnCancel = h('button', { class: 'btn btn-danger', testid: 'btn-cancel', text: 'Cancel', title: 'Cancel without a savepoint: the job ends CANCELED' });
    const previewLink = h('a', { class: 'btn hidden', href: '#/jobs/' + enc + '/preview', testid: 'link-preview', text: 'Result preview' });
    const actionStatus = h('div', { class: 'action-status hidden', testid: 'action-status', 'aria-live': 'polite' });
    const notFound = h('div', { class: 'card error hidden', testid: 'job-missing' });

    const dagHolder = h('div', { class: 'dag-holder' });
    const vertexBody = h('tbody');
    const vertexTable = h('table', { class: 'table', testid: 'vertices-table' },
      h('thead', null, h('tr', null,
        h('th', { text: 'Vertex' }), h('th', { class: 'num', text: 'Parallelism' }),
        h('th', { class: 'num', text: 'Records in' }), h('th', { class: 'num', text: 'Records out' }),
        h('th', { class: 'num', text: 'In/s' }), h('th', { class: 'num', text: 'Out/s' }),
        h('th', { text: 'Backpressure' }),
        h('th', { class: 'num', text: 'Latency p50 / p99', title: 'Latency markers from the sources to this vertex (last 10-20 s)' }))),
      vertexBody);
    const throughput = lineChart({ testid: 'throughput-chart', xKind: 'time', yFormat: fmtCompact, label: 'records per second', emptyText: 'Sampled while the job runs.', logToggle: true });
    const latency = lineChart({ testid: 'latency-chart', xKind: 'time', yFormat: fmtMicros, label: 'latency percentiles', logToggle: true });
    const latencyNone = h('p', { class: 'muted', testid: 'latency-none', text: 'Latency: not measured by this job (submit it with --latency-tracking-interval 1s to track it with latency markers).' });
    const latencyLatest = h('p', { class: 'muted small hidden', testid: 'latency-latest' });
    latency.el.classList.add('hidden');
    const checkpointsSummary = h('p', { class: 'muted', testid: 'checkpoints-summary' });
    const checkpointsBody = h('tbody');
    const checkpointsTable = h('table', { class: 'table', testid: 'checkpoints-table' },
      h('thead', null, h('tr', null,
        h('th', { class: 'num', text: 'ID' }), h('th', { text: 'Status' }), h('th', { text: 'Acknowledged' }),
        h('th', { class: 'num', text: 'Duration' }), h('th', { class: 'num', text: 'State size' }), h('th', { text: 'Path' }))),
      checkpointsBody);
    const exceptionsBox = h('div', { testid: 'exceptions' });

    const content = h('div', { class: 'job-content' },
      h('div', { class: 'page-head' },
        h('div', null, h('div', { class: 'crumbs' }, h('a', { href: '#/', text: 'Jobs' }), ' / ', h('span', { class: 'mono', text: jobId })),
          h('div', { class: 'title-row' }, title, state)),
        h('div', { class: 'actions' }, previewLink, btnSavepoint, btnStop, btnCancel)),
      actionStatus,
      card(null, 'job-meta', meta, failure),
      card('Job graph', 'dag-card', dagHolder),
      card('Vertices', 'vertices-card', h('div', { class: 'table-scroll' }, vertexTable)),
      h('div', { class: 'grid2' },
        card('Throughput (records/s)', 'throughput-card', throughput.el),
        card('Latency percentiles', 'latency-card', latencyNone, latencyLatest, latency.el)),
      card('Checkpoints', 'checkpoints-card', checkpointsSummary, h('div', { class: 'table-scroll' }, checkpointsTable)),
      card('Exceptions', 'exceptions-card', exceptionsBox));
    root.append(notFound, content);

    let lastJob = null;
    let shape = null;
    let updateDag = null;
    let vertexRows = new Map();

    function renderOperation() {
      const op = operations.get(jobId);
      clear(actionStatus);
      if (!op) {
        actionStatus.classList.add('hidden');
        return;
      }
      actionStatus.classList.remove('hidden');
      const what = op.kind === 'stop' ? 'Stop with savepoint' : op.kind === 'cancel' ? 'Cancel' : 'Savepoint';
      if (op.kind === 'cancel') {
        actionStatus.className = 'action-status';
        actionStatus.append(op.error ? h('span', { class: 'error', testid: 'action-error', text: 'Cancel failed: ' + op.error })
          : h('span', { text: 'Cancel requested.' }));
      } else if (op.status === 'IN_PROGRESS') {
        actionStatus.className = 'action-status';
        actionStatus.append(h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', { text: what + ': in progress…' }));
      } else if (op.error) {
        actionStatus.className = 'action-status error';
        actionStatus.append(h('span', { testid: 'savepoint-error', text: what + ' failed: ' + op.error }));
      } else {
        actionStatus.className = 'action-status ok';
        const resubmit = h('button', {
          class: 'btn btn-small', testid: 'btn-resubmit', text: 'Submit from this savepoint',
          onclick: () => {
            if (lastJob) sessionStorage.setItem(PREFILL_KEY, JSON.stringify({ job: lastJob.job || lastJob.name, args: lastJob.args || [], from_savepoint: op.location }));
            location.hash = '#/';
          },
        });
        actionStatus.append(h('span', { text: what + ' written to ' }),
          h('code', { testid: 'savepoint-location', text: op.location }), ' ', resubmit);
      }
      refreshButtons();
    }

    function refreshButtons() {
      const op = operations.get(jobId);
      const busy = !!(op && op.status === 'IN_PROGRESS' && op.kind !== 'cancel');
      const done = !lastJob || TERMINAL.has(lastJob.state);
      btnSavepoint.disabled = busy || done;
      btnStop.disabled = busy || done;
      btnCancel.disabled = done;
    }

    operationListener = (id) => {
      if (id === jobId) {
        renderOperation();
        jobPoll.kick();
      }
    };

    async function trigger(kind) {
      btnSavepoint.disabled = btnStop.disabled = true;
      try {
        if (kind === 'cancel') {
          await api('PATCH', 'jobs/' + enc);
          operations.set(jobId, { kind, status: 'COMPLETED', error: null });
          renderOperation();
          jobPoll.kick();
          return;
        }
        const r = await api('POST', 'jobs/' + enc + (kind === 'stop' ? '/stop' : '/savepoints'), {});
        followSavepoint(jobId, kind, r['request-id']);
      } catch (e) {
        operations.set(jobId, { kind, status: 'COMPLETED', error: e.message });
        renderOperation();
      }
    }
    btnSavepoint.addEventListener('click', () => trigger('savepoint'));
    btnStop.addEventListener('click', () => trigger('stop'));
    btnCancel.addEventListener('click', () => trigger('cancel'));

    function renderVertices(job) {
      const ids = (job.vertices || []).map((v) => v.id).join(',');
      if (ids !== [...vertexRows.keys()].join(',')) {
        clear(vertexBody);
        vertexRows = new Map();
        for (const v of job.vertices || []) {
          const cells = {
            par: h('td', { class: 'num' }),
            rin: h('td', { class: 'num', testid: 'vertex-' + v.id + '-records-in' }),
            rout: h('td', { class: 'num', testid: 'vertex-' + v.id + '-records-out' }),
            inRate: h('td', { class: 'num' }),
            outRate: h('td', { class: 'num' }),
            bp: h('span', { class: 'bp-text' }),
            bar: h('span', { class: 'bp-fill' }),
            lat: h('td', { class: 'num nowrap', testid: 'vertex-' + v.id + '-latency' }),
          };
          const ops = Array.isArray(v.operators) ? v.operators : [];
          vertexBody.appendChild(h('tr', { testid: 'vertex-row-' + v.id },
            h('td', null, h('div', { class: 'v-title', text: v.name }),
              ops.length > 1 ? h('div', { class: 'muted small', text: ops.join(' → ') }) : null),
            cells.par, cells.rin, cells.rout, cells.inRate, cells.outRate,
            h('td', { class: 'nowrap' }, h('span', { class: 'bp-meter' }, cells.bar), cells.bp),
            cells.lat));
          vertexRows.set(v.id, cells);
        }
      }
      for (const v of job.vertices || []) {
        const c = vertexRows.get(v.id);
        const mt = v.metrics || {};
        setText(c.par, v.parallelism);
        setText(c.rin, fmtInt(mt['read-records']));
        c.rin.setAttribute('data-value', String(mt['read-records']));
        setText(c.rout, fmtInt(mt['write-records']));
        c.rout.setAttribute('data-value', String(mt['write-records']));
        const ended = TERMINAL.has(job.state);
        setText(c.inRate, ended ? '—' : fmtRate(mt['records-in-per-second']));
        setText(c.outRate, ended ? '—' : fmtRate(mt['records-out-per-second']));
        const bp = ended ? 0 : Number(mt['backpressure-ratio'] || 0);
        setText(c.bp, ended ? '—' : fmtPercent(bp));
        c.bar.style.width = Math.round(Math.max(0, Math.min(1, bp)) * 100) + '%';
        c.bar.className = 'bp-fill bp-' + pressureLevel(bp);
        // Of the sources whose markers reach this vertex, the slowest path.
        const lats = (Array.isArray(v.latency) ? v.latency : []).filter((l) => Number(l['recent-markers']) > 0);
        if (lats.length === 0) {
          setText(c.lat, '—');
          c.lat.removeAttribute('data-p99');
          c.lat.removeAttribute('title');
        } else {
          const worst = lats.reduce((a, b) => (Number(b.p99) > Number(a.p99) ? b : a));
          setText(c.lat, fmtMicros(worst.p50) + ' / ' + fmtMicros(worst.p99));
          c.lat.setAttribute('data-p99', String(worst.p99));
          c.lat.setAttribute('title', lats.map((l) => 'from ' + (l['source-name'] || l.source) + ': p50 '
            + fmtMicros(l.p50) + ', p95 ' + fmtMicros(l.p95) + ', p99 ' + fmtMicros(l.p99)
            + ', max ' + fmtMicros(l.max) + ' (' + l['recent-markers'] + ' markers)').join('\n'));
        }
      }
    }

    function renderCharts(job, now) {
      // Points while the job runs, and one more when it ends (its rates drop to 0).
      const ended = TERMINAL.has(job.state);
      const sample = !ended || (hist.seenRunning && !hist.ended);
      if (ended) hist.ended = true;
      else hist.seenRunning = true;
      const vertices = job.vertices || [];
      const edges = (job.plan && job.plan.edges) || [];
      const series = [];
      vertices.forEach((v, i) => {
        const isSink = !edges.some((e) => e.source === v.id) && vertices.length > 1;
        const key = v.id + (isSink ? ':in' : ':out');
        if (!hist.rates.has(key)) hist.rates.set(key, []);
        const mt = v.metrics || {};
        const value = Number(isSink ? mt['records-in-per-second'] : mt['records-out-per-second']);
        const pts = hist.rates.get(key);
        if (sample) pushPoint(pts, [now, isFinite(value) ? value : null]);
        series.push({ name: truncate(v.name, 28) + (isSink ? ' in' : ' out'), color: PALETTE[i % PALETTE.length], points: pts });
      });
      throughput.render(series);

      const lat = job['latency-us'];
      if (lat) hist.measured = true;
      if (sample) {
        for (const q of ['p50', 'p99', 'p999']) {
          pushPoint(hist.latency[q], [now, lat && lat[q] !== undefined && lat[q] !== null ? Number(lat[q]) : null]);
        }
      }
      // The latest percentiles in words (a job that reports them only once it ended
      // has no history to chart).
      latencyLatest.classList.toggle('hidden', !lat);
      if (lat) {
        const by = lat['measured-by'] === 'latency markers'
          ? ' (latency markers, ' + (lat.source || 'source') + ' → ' + (lat.vertex || 'sink') + ')' : '';
        setText(latencyLatest, (TERMINAL.has(job.state) ? 'Final: ' : 'Latest: ')
          + ['p50', 'p99', 'p999', 'max'].map((q) => q + ' ' + fmtMicros(lat[q])).join(' · ') + by);
      }
      const charted = hist.latency.p50.filter((p) => p[1] !== null).length >= 2;
      latencyNone.classList.toggle('hidden', hist.measured);
      latency.el.classList.toggle('hidden', !charted);
      if (charted) {
        latency.render([
          { name: 'p50', color: PALETTE[0], points: hist.latency.p50 },
          { name: 'p99', color: PALETTE[3], points: hist.latency.p99 },
          { name: 'p999', color: PALETTE[6], points: hist.latency.p999 },
        ]);
      }
    }

    function renderJob(job) {
      if (lastJob && lastJob.state !== job.state && overviewPoll) overviewPoll.kick();
      lastJob = job;
      setText(title, job.name);
      document.title = job.name + ' · eddy';
      setText(state, job.state);
      state.className = 'state state-' + String(job.state).toLowerCase();
      setText(idField, job.id);
      setText(startField, fmtTime(job['start-time']));
      setText(endField, fmtTime(job['end-time']));
      setText(durationField, fmtDuration(job.duration));
      setText(parField, job.parallelism === undefined ? '—' : job.parallelism);
      setText(restartsField, (job.restarts === undefined ? '—' : job.restarts) + (job.resumed ? ' · resumed ' + job.resumed + '× after a daemon restart' : ''));
      const argsText = [job.job || job.name, ...(job.args || [])].join(' ');
      setText(argsField, argsText);
      failure.classList.toggle('hidden', !job.failure);
      setText(failure, job.failure || '');
      previewLink.classList.toggle('hidden', !job.preview);
      const newShape = dagShape(job);
      if (newShape !== shape) {
        shape = newShape;
        updateDag = drawDag(dagHolder, job);
      }
      updateDag(job);
      renderVertices(job);
      renderCharts(job, Date.now());
      refreshButtons();
    }

    const jobPoll = poller(async () => {
      try {
        const job = await api('GET', 'jobs/' + enc);
        reportFetch(null);
        notFound.classList.add('hidden');
        content.classList.remove('hidden');
        renderJob(job);
      } catch (e) {
        reportFetch(e);
        if (e.status === 404) {
          content.classList.add('hidden');
          notFound.classList.remove('hidden');
          setText(notFound, e.message);
        }
      }
    }, () => (lastJob && TERMINAL.has(lastJob.state) ? POLL_MS * 5 : POLL_MS));

    function renderCheckpoints(c) {
      const counts = c.counts || {};
      const latest = (c.latest && c.latest.completed) || null;
      const restored = c.latest && c.latest.restored;
      setText(checkpointsSummary, 'completed ' + fmtInt(counts.completed || 0) + ' · failed ' + fmtInt(counts.failed || 0)
        + ' · restored ' + fmtInt(counts.restored || 0) + ' · total ' + fmtInt(counts.total || 0)
        + (latest ? ' · latest #' + latest.id + ' (' + fmtBytes(latest.state_size) + ')' : '')
        + (restored && restored.id !== undefined ? ' · restored from #' + restored.id : ''));
      clear(checkpointsBody);
      const history = c.history || [];
      if (!history.length) {
        checkpointsBody.appendChild(h('tr', null, h('td', { colspan: 6, class: 'muted', text: 'No checkpoints yet.' })));
      }
      for (const cp of history) {
        checkpointsBody.appendChild(h('tr', { testid: 'checkpoint-' + cp.id },
          h('td', { class: 'num', text: cp.id }),
          h('td', null, h('span', { class: 'cp-status cp-' + String(cp.status).toLowerCase(), text: cp.status })),
          h('td', { text: fmtTime(cp.latest_ack_timestamp) }),
          h('td', { class: 'num', text: cp.end_to_end_duration === undefined || cp.end_to_end_duration === null ? '—' : fmtDuration(cp.end_to_end_duration) }),
          h('td', { class: 'num', text: fmtBytes(cp.state_size) }),
          h('td', { class: 'mono path', title: cp.external_path || '', text: cp.external_path || '—' })));
      }
    }

    let exceptionsKey = null;
    function renderExceptions(x) {
      const key = JSON.stringify(x);
      if (key === exceptionsKey) return;
      exceptionsKey = key;
      clear(exceptionsBox);
      const all = x['all-exceptions'] || [];
      exceptionsBox.appendChild(h('p', { class: 'muted', testid: 'exceptions-restarts', text: 'Restarts: ' + fmtInt(x.restarts || 0) }));
      if (!x['root-exception'] && !all.length) {
        exceptionsBox.appendChild(h('p', { class: 'muted', testid: 'exceptions-none', text: 'No exceptions.' }));
        return;
      }
      if (x['root-exception']) {
        exceptionsBox.append(h('h3', null, 'Root exception ', h('span', { class: 'muted small', text: fmtTime(x.timestamp) })),
          h('pre', { class: 'exception', testid: 'root-exception', text: x['root-exception'] }));
      }
      if (all.length) {
        exceptionsBox.appendChild(h('h3', { text: 'History' }));
        const list = h('ol', { class: 'exception-list' });
        for (const e of all) {
          list.appendChild(h('li', null, h('span', { class: 'muted small', text: fmtTime(e.timestamp) + (e.restarted ? ' · restarted' : '') }),
            h('pre', { class: 'exception', text: e.exception })));
        }
        exceptionsBox.appendChild(list);
      }
    }

    const sidePoll = poller(async () => {
      const [c, x] = await Promise.allSettled([
        api('GET', 'jobs/' + enc + '/checkpoints'),
        api('GET', 'jobs/' + enc + '/exceptions'),
      ]);
      if (c.status === 'fulfilled' && c.value) renderCheckpoints(c.value);
      if (x.status === 'fulfilled' && x.value) renderExceptions(x.value);
    }, () => (lastJob && TERMINAL.has(lastJob.state) ? POLL_MS * 10 : POLL_MS * 2));

    renderOperation();
    return {
      stop() {
        jobPoll.stop();
        sidePoll.stop();
        operationListener = null;
        document.title = 'eddy';
      },
    };
  }

  /** A number when the value reads as one ("95", "1.5e3", 95), else NaN. */
  function numeric(value) {
    if (typeof value === 'number') return value;
    if (typeof value !== 'string' || value.trim() === '') return NaN;
    const n = Number(value);
    return isFinite(n) ? n : NaN;
  }

  function cellText(value) {
    if (value === null || value === undefined) return '';
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  function previewPage(root, jobId) {
    const enc = encodeURIComponent(jobId);
    let rowsWanted = 100;
    let paused = false;
    const hiddenColumns = new Set();
    const jobName = h('span', { text: jobId });
    const total = h('span', { testid: 'preview-total', text: '—' });
    const shown = h('span', { testid: 'preview-shown', text: '0' });
    const rowsSelect = h('select', { testid: 'preview-rows', 'aria-label': 'rows' },
      [10, 100, 1000].map((n) => h('option', { value: n, selected: n === rowsWanted, text: 'last ' + n })));
    rowsSelect.addEventListener('change', () => {
      rowsWanted = Number(rowsSelect.value);
      poll.kick();
    });
    const pauseButton = h('button', { class: 'btn btn-small', testid: 'preview-pause', text: 'Pause' });
    pauseButton.addEventListener('click', () => {
      paused = !paused;
      setText(pauseButton, paused ? 'Resume' : 'Pause');
      if (!paused) poll.kick();
    });
    const toggles = h('div', { class: 'toggles', testid: 'preview-columns' });
    const chart = lineChart({ testid: 'preview-chart', xKind: 'number', xFormat: fmtInt, yFormat: fmtCompact, height: 240, label: 'numeric columns', logToggle: true, emptyText: 'No numeric column selected.' });
    const noNumeric = h('p', { class: 'muted hidden', testid: 'preview-no-numeric', text: 'No numeric columns to chart (a column is charted when all its values are numbers).' });
    const thead = h('thead');
    const tbody = h('tbody');
    const table = h('table', { class: 'table preview', testid: 'preview-table' }, thead, tbody);
    const message = h('div', { class: 'card muted hidden', testid: 'preview-message' });

    const content = h('div', null,
      card('Numeric columns', 'preview-chart-card', toggles, noNumeric, chart.el),
      card(null, 'preview-table-card', h('p', { class: 'muted small', text: 'Newest first.' }), h('div', { class: 'table-scroll tall' }, table)));
    root.append(
      h('div', { class: 'page-head' },
        h('div', null,
          h('div', { class: 'crumbs' }, h('a', { href: '#/', text: 'Jobs' }), ' / ',
            h('a', { href: '#/jobs/' + enc, testid: 'preview-back' }, jobName), ' / preview'),
          h('div', { class: 'title-row' }, h('h1', { text: 'Result preview' }))),
        h('div', { class: 'actions' },
          h('span', { class: 'muted' }, 'showing ', shown, ' of ', total, ' records'), rowsSelect, pauseButton)),
      message, content);

    api('GET', 'jobs/' + enc).then((j) => setText(jobName, j.name + ' (' + jobId + ')'), () => {});

    let headerKey = null;
    let toggleKey = null;

    function render(data) {
      const rows = Array.isArray(data.rows) ? data.rows : [];
      const width = Math.max((data.columns || []).length, ...rows.map((r) => (Array.isArray(r) ? r.length : 1)));
      const columns = [];
      for (let i = 0; i < width; i += 1) columns.push(data.columns && data.columns[i] !== undefined ? String(data.columns[i]) : 'c' + i);
      setText(total, fmtInt(data.total));
      setText(shown, fmtInt(rows.length));

      const key = JSON.stringify(columns);
      if (key !== headerKey) {
        headerKey = key;
        clear(thead).appendChild(h('tr', null, columns.map((c) => h('th', { text: c }))));
      }
      clear(tbody);
      for (let r = rows.length - 1; r >= 0; r -= 1) {
        const row = Array.isArray(rows[r]) ? rows[r] : [rows[r]];
        tbody.appendChild(h('tr', null, columns.map((_, i) => {
          const text = cellText(row[i]);
          return h('td', { title: text.length > 40 ? text : null, text });
        })));
      }

      // Numeric columns: every present value reads as a number.
      const numericCols = [];
      columns.forEach((c, i) => {
        const values = rows.map((row) => (Array.isArray(row) ? row[i] : i === 0 ? row : undefined)).filter((v) => v !== undefined && v !== null);
        if (values.length && values.every((v) => isFinite(numeric(v)))) numericCols.push(i);
      });
      const tkey = JSON.stringify(numericCols.map((i) => columns[i]));
      if (tkey !== toggleKey) {
        toggleKey = tkey;
        clear(toggles);
        for (const i of numericCols) {
          const name = columns[i];
          const box = h('input', { type: 'checkbox', checked: !hiddenColumns.has(name), testid: 'preview-col-' + name });
          box.addEventListener('change', () => {
            if (box.checked) hiddenColumns.delete(name);
            else hiddenColumns.add(name);
            poll.kick();
          });
          toggles.appendChild(h('label', { class: 'toggle' }, box, ' ', name));
        }
      }
      noNumeric.classList.toggle('hidden', numericCols.length > 0);
      chart.el.classList.toggle('hidden', numericCols.length === 0);
      const first = Number(data.total) - rows.length + 1;
      chart.render(numericCols.filter((i) => !hiddenColumns.has(columns[i])).map((i, k) => ({
        name: columns[i],
        color: PALETTE[numericCols.indexOf(i) % PALETTE.length] || PALETTE[k % PALETTE.length],
        points: rows.map((row, r) => [isFinite(first) ? first + r : r + 1, numeric(Array.isArray(row) ? row[i] : row)]),
      })));
    }

    let lastData = null;
    const poll = poller(async () => {
      if (paused && lastData) {
        render(lastData);
        return;
      }
      try {
        lastData = await api('GET', 'jobs/' + enc + '/preview?rows=' + rowsWanted);
        reportFetch(null);
        message.classList.add('hidden');
        content.classList.remove('hidden');
        render(lastData);
      } catch (e) {
        reportFetch(e);
        if (e.status === 404) {
          message.classList.remove('hidden');
          content.classList.add('hidden');
          setText(message, 'No result preview: ' + e.message + ' (a job has one when its sink is print:).');
        }
      }
    }, POLL_MS);
    return { stop: () => poll.stop() };
  }

  // ---------------------------------------------------------------- header, router

  const overviewEl = document.getElementById('overview');
  overviewPoll = poller(async () => {
    try {
      const o = await api('GET', 'overview');
      append(clear(overviewEl), [
        h('span', { title: 'running jobs' }, h('b', { testid: 'overview-running', text: fmtInt(o['jobs-running']) }), ' running'),
        h('span', { text: fmtInt(o['jobs-finished']) + ' finished' }),
        o['jobs-failed'] ? h('span', { class: 'bad', text: fmtInt(o['jobs-failed']) + ' failed' }) : null,
        h('span', { text: (o.cores === undefined ? '?' : o.cores) + ' cores' }),
        o.role ? h('span', { text: o.role }) : null,
        h('span', { class: 'version', text: 'v' + (o['eddy-version'] || '?') })]);
    } catch (e) {
      setText(overviewEl, '');
    }
  }, POLL_MS * 3);

  let current = null;

  function route() {
    if (current) current.stop();
    current = null;
    const root = clear(document.getElementById('app'));
    const path = (location.hash || '#/').replace(/^#/, '') || '/';
    let m;
    if ((m = path.match(/^\/jobs\/([^/]+)\/preview\/?$/))) current = previewPage(root, decodeURIComponent(m[1]));
    else if ((m = path.match(/^\/jobs\/([^/]+)\/?$/))) current = jobPage(root, decodeURIComponent(m[1]));
    else current = jobList(root);
    window.scrollTo(0, 0);
  }

  window.addEventListener('hashchange', route);
  route();
})();
