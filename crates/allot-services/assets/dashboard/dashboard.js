// allot operations dashboard. Vanilla JavaScript, no dependencies: polls
// /api/overview and /api/decisions/recent every 2 s, turns counters into
// rates, draws charts as inline SVG, and answers "why does X own this
// record?" from /api/records/{id}/decisions.
//
// Every number shown sits in an element with a stable `data-figure` name and
// its raw value in `data-value`, so the page can be checked against the API.
'use strict';

(() => {
  const POLL_MS = 2000;
  const RECENT_LIMIT = 25;
  const HISTORY = 60;
  const TOP_TERRITORIES = 21; // the API's busiest 20, and (other)
  const TOKEN_KEY = 'allot.api-token';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const state = {
    prev: null, // the previous overview, for rates
    history: {}, // rate name → recent rates, for sparklines
    reps: new Map(), // rep id → name
    opened: new Set(), // recent decisions whose explanation is open
    timer: null,
    polling: false,
  };

  class AuthNeeded extends Error {}

  // ---------------------------------------------------------------- DOM helpers

  function attrs(e, a) {
    for (const [k, v] of Object.entries(a || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    return e;
  }

  function add(e, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : String(k));
    }
    return e;
  }

  const el = (tag, a, ...kids) => add(attrs(document.createElement(tag), a), kids);
  const svg = (tag, a, ...kids) => add(attrs(document.createElementNS(SVG_NS, tag), a), kids);

  function fill(id, ...kids) {
    const body = document.querySelector(`#${id} .body`);
    body.replaceChildren();
    add(body, kids);
  }

  // ------------------------------------------------------------------- formats

  const int = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
  function rate(r) {
    if (r === null || r === undefined) return '—';
    return r >= 100 ? r.toFixed(0) : r.toFixed(1);
  }
  function secs(s) {
    if (s === null || s === undefined) return '—';
    if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
    return `${s.toFixed(2)} s`;
  }
  const ratio = (x) => (x === null || x === undefined ? '—' : x.toFixed(2));
  function when(ms) {
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? '—' : d.toLocaleTimeString('en-GB');
  }
  function whenFull(ms) {
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? '—' : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }
  const sum = (obj) => Object.values(obj || {}).reduce((a, b) => a + b, 0);
  const repName = (id) => (id ? state.reps.get(id) || id : '—');

  /** A figure: a stable name, the raw value, and the text shown. */
  function fig(name, value, text, tag = 'span') {
    const raw = value === null || value === undefined ? '' : value;
    const shown = text !== undefined ? text : int(value);
    return el(tag, { class: 'fig', 'data-figure': name, 'data-value': raw }, shown);
  }

  const kpi = (name, value, label, cls) =>
    el('div', { class: `kpi ${cls || ''}` }, fig(name, value), el('span', { class: 'label' }, label));

  // ---------------------------------------------------------------------- API

  function headers() {
    const h = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) h.Authorization = `Bearer ${token}`;
    return h;
  }

  async function getJson(path, allow404) {
    const res = await fetch(path, { headers: headers(), cache: 'no-store' });
    if (res.status === 401) throw new AuthNeeded('the API asks for a token');
    if (allow404 && res.status === 404) return null;
    if (!res.ok) {
      let msg = `${res.status}`;
      try {
        msg = (await res.json()).message || msg;
      } catch (_) {
        /* not JSON */
      }
      throw new Error(`${path}: ${msg}`);
    }
    return res.json();
  }

  function setStatus(kind, text) {
    const s = document.getElementById('status');
    s.className = `dot s-${kind}`;
    s.dataset.value = kind;
    s.textContent = text;
  }

  function askToken() {
    setStatus('auth', 'token needed');
    document.body.dataset.state = 'auth';
    const form = document.getElementById('auth');
    form.hidden = false;
    form.elements.token.focus();
  }

  // ------------------------------------------------------------------- polling

  async function poll() {
    clearTimeout(state.timer);
    if (state.polling) return;
    state.polling = true;
    try {
      const [o, r] = await Promise.all([
        getJson('/api/overview'),
        getJson(`/api/decisions/recent?limit=${RECENT_LIMIT}`),
      ]);
      render(o, r.decisions || []);
      setStatus('live', 'live');
      document.body.dataset.state = 'ready';
      state.timer = setTimeout(poll, POLL_MS);
    } catch (e) {
      if (e instanceof AuthNeeded) {
        askToken(); // polling resumes once a token is given
      } else {
        setStatus('error', `cannot reach the API (${e.message})`);
        document.body.dataset.state = 'error';
        state.timer = setTimeout(poll, POLL_MS);
      }
    } finally {
      state.polling = false;
    }
  }

  /** Per-second rates of counters between this overview and the previous. */
  function rates(o) {
    const counters = {
      consumed: o.ingest.consumed_total,
      decoded: o.ingest.decoded_total,
      decisions: o.decisions.total,
      written: o.writer.changes_written_total,
    };
    const out = {};
    const prev = state.prev;
    const dt = prev ? (o.generated_at - prev.at) / 1000 : 0;
    for (const [k, v] of Object.entries(counters)) {
      out[k] = prev && dt > 0 ? Math.max(0, v - prev.counters[k]) / dt : null;
      if (out[k] !== null) {
        const h = (state.history[k] = state.history[k] || []);
        h.push(out[k]);
        if (h.length > HISTORY) h.shift();
      }
    }
    state.prev = { at: o.generated_at, counters };
    return out;
  }

  function render(o, recent) {
    state.reps = new Map(o.workload.reps.map((r) => [r.id, r.name || r.id]));
    const r = rates(o);
    const updated = document.getElementById('updated');
    updated.textContent = when(o.generated_at);
    updated.dataset.value = o.generated_at;
    updated.setAttribute('datetime', new Date(o.generated_at).toISOString());
    renderThroughput(o, r);
    renderDecisions(o);
    renderTerritories(o);
    renderErrors(o);
    renderWriter(o);
    renderLag(o);
    renderFailed(o);
    renderWorkload(o);
    renderRecent(recent);
  }

  // -------------------------------------------------------------------- charts

  function sparkline(values) {
    const w = 200;
    const h = 32;
    const s = svg('svg', { class: 'spark', viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    if (!values || values.length < 2) return s;
    const max = Math.max(...values, 1e-9);
    // Full width from the start; once the history is full it scrolls.
    const step = w / (Math.max(values.length, 10) - 1);
    const x0 = w - step * (values.length - 1);
    const pts = values.map((v, i) => [x0 + i * step, h - 2 - (v / max) * (h - 4)]);
    const line = pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
    s.append(svg('polygon', { class: 'spark-area', points: `${x0},${h} ${line} ${w},${h}` }));
    s.append(svg('polyline', { class: 'spark-line', points: line }));
    return s;
  }

  /**
   * Horizontal bars: rows of {label, value, figure, title, cls}. Values are
   * figures (data-figure on the value text).
   */
  function barChart(rows, opts = {}) {
    const labelW = opts.labelWidth || 170;
    const valueW = 60;
    const width = opts.width || 520;
    const rowH = 22;
    const barW = width - labelW - valueW;
    const max = Math.max(1, ...rows.map((r) => r.value));
    const s = svg('svg', {
      class: 'chart',
      viewBox: `0 0 ${width} ${rows.length * rowH + 4}`,
      role: 'img',
      'aria-label': opts.label || 'bar chart',
    });
    rows.forEach((r, i) => {
      const y = i * rowH + 2;
      const g = svg('g', {}, svg('title', { text: r.title || `${r.label}: ${r.value}` }));
      g.append(svg('text', { class: 'label', x: 0, y: y + 15, text: clip(r.label, labelW / 7) }));
      g.append(svg('rect', { class: 'track', x: labelW, y: y + 3, width: barW, height: rowH - 8, rx: 3 }));
      g.append(svg('rect', {
        class: `bar ${r.cls || ''}`,
        x: labelW,
        y: y + 3,
        width: Math.max(r.value > 0 ? 2 : 0, (r.value / max) * barW),
        height: rowH - 8,
        rx: 3,
      }));
      g.append(svg('text', {
        class: 'value',
        x: labelW + barW + 8,
        y: y + 15,
        'data-figure': r.figure,
        'data-value': r.value,
        text: int(r.value),
      }));
      s.append(g);
    });
    return s;
  }

  function clip(text, n) {
    const t = String(text);
    return t.length > n ? `${t.slice(0, Math.max(1, n - 1))}…` : t;
  }

  // -------------------------------------------------------------------- panels

  function renderThroughput(o, r) {
    const stage = (title, rateKey, rateFigure, unit, rows) =>
      el('div', { class: 'stage' },
        el('h3', {}, title),
        el('div', { class: 'rate' }, fig(rateFigure, r[rateKey] === null ? null : Number(r[rateKey].toFixed(3)), rate(r[rateKey])), el('small', {}, unit)),
        sparkline(state.history[rateKey]),
        el('dl', {}, rows.map(([label, name, value]) => [el('dt', {}, label), el('dd', {}, fig(name, value))])));
    fill('throughput',
      stage('Ingest', 'decoded', 'rate.ingest.decoded', 'events/s', [
        ['events decoded', 'ingest.decoded_total', o.ingest.decoded_total],
        ['payloads consumed', 'ingest.consumed_total', o.ingest.consumed_total],
        ['duplicates dropped', 'ingest.deduped', o.ingest.deduped],
        ['own writes echoed', 'ingest.echoes', o.ingest.echoes],
        ['stale events', 'ingest.stale', o.ingest.stale],
        ['parked for a CRM read', 'ingest.parked', o.ingest.parked],
        ['read deadline passed', 'ingest.hydrated.deadline', o.ingest.hydrated.deadline || 0],
      ]),
      stage('Assign', 'decisions', 'rate.decisions', 'decisions/s', [
        ['decisions', 'decisions.total', o.decisions.total],
        ['owner changed', 'decisions.changed', o.decisions.changed],
        ['conflicts resolved', 'decisions.conflicts_resolved', o.decisions.conflicts_resolved],
        ['fallback', 'decisions.fallback', o.decisions.fallback],
        ['unassigned', 'decisions.unassigned', o.decisions.unassigned],
      ]),
      stage('Write', 'written', 'rate.writer.changes_written', 'changes/s', [
        ['changes written', 'writer.changes_written_total', o.writer.changes_written_total],
        ['update calls', 'writer.calls_total', o.writer.calls_total],
        ['queued for the writer', 'writer.backlog', o.writer.backlog],
        ['retries', 'writer.retries_total', o.writer.retries_total],
        ['given up', 'writer.failed_total', o.writer.failed_total],
      ]));
  }

  function renderDecisions(o) {
    const d = o.decisions;
    const rows = Object.entries(d.by_strategy)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([s, n]) => ({
        label: s.replace(/_/g, ' '),
        value: n,
        figure: `decisions.by_strategy.${s}`,
        cls: s === 'fallback' || s === 'unassigned' ? 'over' : '',
      }));
    fill('decisions',
      el('div', { class: 'kpis' },
        kpi('decisions.total', d.total, 'decisions'),
        kpi('decisions.conflicts_resolved', d.conflicts_resolved, 'conflicts resolved'),
        kpi('decisions.fallback', d.fallback, 'fallback', d.fallback ? 'bad' : ''),
        kpi('decisions.unassigned', d.unassigned, 'unassigned', d.unassigned ? 'bad' : '')),
      rows.length ? barChart(rows, { label: 'decisions by strategy', labelWidth: 130, width: 420 }) : el('p', { class: 'empty' }, 'no decisions yet'));
  }

  function renderTerritories(o) {
    const all = Object.entries(o.decisions.by_territory).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const rows = all.slice(0, TOP_TERRITORIES).map(([t, n]) => ({
      label: t,
      value: n,
      figure: `decisions.by_territory.${t}`,
      cls: t === '(none)' ? 'over' : '',
    }));
    fill('territories',
      rows.length ? barChart(rows, { label: 'decisions by territory', labelWidth: 130, width: 420 }) : el('p', { class: 'empty' }, 'no decisions yet'),
      o.decisions.by_territory['(other)'] ? el('p', { class: 'note' }, 'the busiest territories shown; (other) sums the rest') : null);
  }

  function renderErrors(o) {
    const calls = o.writer.calls;
    const outcome = (name) => Object.values(calls).reduce((a, c) => a + (c[name] || 0), 0);
    const limited = outcome('rate_limited') + outcome('quota_exhausted');
    const hydrationErrors = o.ingest.hydrated.error || 0;
    const list = (title, prefix, entries) =>
      entries.length
        ? el('table', {}, el('tr', {}, el('th', {}, title), el('th', {}, 'count')),
          entries.map(([k, n]) => el('tr', {}, el('td', { class: 'mono' }, k), el('td', {}, fig(`${prefix}.${k}`, n)))))
        : null;
    const failures = [];
    for (const [crm, reasons] of Object.entries(o.writer.failed)) {
      for (const [reason, n] of Object.entries(reasons)) failures.push([`${crm}.${reason}`, n]);
    }
    fill('errors',
      el('div', { class: 'kpis' },
        kpi('dlq.size', o.dlq.size, 'in the dead-letter log', o.dlq.size ? 'bad' : ''),
        kpi('dlq.dead_lettered_total', o.dlq.dead_lettered_total, 'dead-lettered since start'),
        kpi('errors.writes_given_up', o.writer.failed_total, 'writes given up', o.writer.failed_total ? 'bad' : ''),
        kpi('errors.rate_limited', limited, 'calls rate-limited'),
        kpi('errors.hydration', hydrationErrors, 'CRM re-read errors')),
      list('dead letters by kind', 'dlq.dead_lettered', Object.entries(o.dlq.dead_lettered)),
      list('writes given up, by reason', 'writer.failed', failures),
      !Object.keys(o.dlq.dead_lettered).length && !failures.length ? el('p', { class: 'empty' }, 'no errors') : null);
  }

  function renderWriter(o) {
    const w = o.writer;
    const crms = [...new Set([
      ...Object.keys(w.changes_written), ...Object.keys(w.calls), ...Object.keys(w.latency),
      ...Object.keys(w.rate_headroom), ...Object.keys(w.failed), ...Object.keys(w.retries),
    ])].sort();
    if (!crms.length) {
      fill('writer', el('p', { class: 'empty' }, 'no CRM calls yet'));
      return;
    }
    const head = ['CRM', 'written', 'calls', 'retries', 'given up', 'p50', 'p90', 'p99', 'headroom', 'outcomes'];
    const rows = crms.map((crm) => {
      const lat = w.latency[crm] || {};
      const outcomes = Object.entries(w.calls[crm] || {}).map(([k, n], i) =>
        [i ? ' · ' : '', `${k} `, fig(`writer.${crm}.calls.${k}`, n)]);
      const headroom = w.rate_headroom[crm];
      const exhausted = w.quota_exhausted.includes(crm);
      return el('tr', {},
        el('td', {}, crm),
        el('td', {}, fig(`writer.${crm}.changes_written`, w.changes_written[crm] || 0)),
        el('td', {}, fig(`writer.${crm}.calls`, sum(w.calls[crm]))),
        el('td', {}, fig(`writer.${crm}.retries`, w.retries[crm] || 0)),
        el('td', {}, fig(`writer.${crm}.failed`, sum(w.failed[crm]))),
        el('td', {}, fig(`writer.${crm}.p50_seconds`, lat.p50_seconds, secs(lat.p50_seconds))),
        el('td', {}, fig(`writer.${crm}.p90_seconds`, lat.p90_seconds, secs(lat.p90_seconds))),
        el('td', {}, fig(`writer.${crm}.p99_seconds`, lat.p99_seconds, secs(lat.p99_seconds))),
        el('td', {}, exhausted
          ? fig(`writer.${crm}.rate_headroom`, headroom, 'daily quota used up')
          : fig(`writer.${crm}.rate_headroom`, headroom, headroom === undefined ? '—' : `${int(headroom)} calls`)),
        el('td', { class: 'wrap mono' }, outcomes.length ? outcomes : '—'));
    });
    fill('writer',
      el('table', {}, el('tr', {}, head.map((h) => el('th', {}, h))), rows),
      el('p', { class: 'note' }, 'Latency of update calls (estimated from the histogram). Headroom: calls left in the CRM\'s rate window (HubSpot) or day (Salesforce), as last reported.'));
  }

  function renderFailed(o) {
    const f = o.failed_writes;
    const codes = Object.entries(f.by_code);
    fill('failed',
      el('div', { class: 'kpis' },
        kpi('failed_writes.total', f.total, 'failed writes', f.total ? 'bad' : ''),
        codes.map(([code, n]) => kpi(`failed_writes.by_code.${code}`, n, code.replace(/_/g, ' ')))),
      codes.length
        ? el('p', { class: 'note' }, 'List them with allot writes failed (GET /api/writes/failed); allot writes retry ID decides the record again, allot writes discard ID drops it.')
        : el('p', { class: 'empty' }, 'no failed writes'));
  }

  function renderLag(o) {
    const lag = o.ingest.lag;
    const stages = Object.entries(o.stages);
    fill('lag',
      lag.length
        ? el('table', {}, el('tr', {}, el('th', {}, 'source'), el('th', {}, 'partition'), el('th', {}, 'events behind')),
          lag.map((l) => el('tr', {},
            el('td', { class: 'mono' }, l.source),
            el('td', {}, l.partition),
            el('td', {}, fig(`lag.${l.source}.${l.partition}`, l.events)))))
        : el('p', { class: 'empty' }, 'no source read yet'),
      stages.length
        ? el('table', {}, el('tr', {}, el('th', {}, 'stage'), el('th', {}, 'batches'), el('th', {}, 'p50'), el('th', {}, 'p99')),
          stages.map(([s, l]) => el('tr', {},
            el('td', {}, s),
            el('td', {}, fig(`stage.${s}.batches`, l.count)),
            el('td', {}, fig(`stage.${s}.p50_seconds`, l.p50_seconds, secs(l.p50_seconds))),
            el('td', {}, fig(`stage.${s}.p99_seconds`, l.p99_seconds, secs(l.p99_seconds))))))
        : null);
  }

  function renderWorkload(o) {
    const w = o.workload;
    if (!w.reps.length) {
      fill('workload', el('p', { class: 'empty' }, 'no reps known yet'));
      return;
    }
    // Rows grouped by team, reps without a team last.
    const groups = new Map();
    for (const r of w.reps) {
      const key = r.team || '';
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(r);
    }
    const order = [...groups.keys()].sort((a, b) => (a === '') - (b === '') || a.localeCompare(b));
    const labelW = 260;
    const valueW = 70;
    const width = 1200;
    const rowH = 20;
    const barW = width - labelW - valueW;
    const max = Math.max(1, ...w.reps.map((r) => r.open));
    let y = 0;
    const body = [];
    const teamCv = new Map(w.teams.map((t) => [t.id, t]));
    for (const team of order) {
      const t = teamCv.get(team);
      body.push(svg('text', {
        class: 'group', x: 0, y: y + 14,
        text: team ? `team ${team}${t && t.cv !== null ? ` · balance (CV) ${ratio(t.cv)}` : ''}` : 'not in a team',
      }));
      y += rowH;
      for (const r of groups.get(team)) {
        const over = r.max_open !== null && r.max_open !== undefined && r.open >= r.max_open;
        const g = svg('g', {}, svg('title', { text: `${r.name || r.id} (${r.id}): ${r.open} open${r.max_open ? ` of at most ${r.max_open}` : ''}${r.active ? '' : ', inactive'}` }));
        g.append(svg('text', { class: 'label', x: 12, y: y + 14, text: clip(`${r.name || r.id}${r.active ? '' : ' (inactive)'}`, 36) }));
        g.append(svg('rect', { class: 'track', x: labelW, y: y + 3, width: barW, height: rowH - 6, rx: 3 }));
        g.append(svg('rect', {
          class: `bar ${over ? 'over' : ''}`, x: labelW, y: y + 3,
          width: Math.max(r.open > 0 ? 2 : 0, (r.open / max) * barW), height: rowH - 6, rx: 3,
        }));
        if (r.max_open && r.max_open <= max) {
          const cx = labelW + (r.max_open / max) * barW;
          g.append(svg('line', { class: 'cap', x1: cx, x2: cx, y1: y + 1, y2: y + rowH - 1 }));
        }
        g.append(svg('text', {
          class: 'value', x: labelW + barW + 8, y: y + 14,
          'data-figure': `workload.${r.id}.open`, 'data-value': r.open, text: int(r.open),
        }));
        body.push(g);
        y += rowH;
      }
    }
    if (w.mean_open !== null) {
      const mx = labelW + (w.mean_open / max) * barW;
      body.push(svg('line', { class: 'mean', x1: mx, x2: mx, y1: 0, y2: y }));
    }
    fill('workload',
      el('div', { class: 'kpis' },
        kpi('workload.total_open', w.total_open, 'open records'),
        el('div', { class: 'kpi' }, fig('workload.mean_open', w.mean_open, w.mean_open === null ? '—' : w.mean_open.toFixed(1)), el('span', { class: 'label' }, 'mean per rep (dashed line)')),
        el('div', { class: 'kpi' }, fig('workload.cv', w.cv, ratio(w.cv)), el('span', { class: 'label' }, 'balance: coefficient of variation (0 = even)'))),
      svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${y + 2}`, role: 'img', 'aria-label': 'open records per rep' }, body));
  }

  function strategyTag(s) {
    return el('span', { class: `tag ${s}` }, s.replace(/_/g, ' '));
  }

  function recentKey(d) {
    return `${d.record_id}@${d.decided_at}`;
  }

  function renderRecent(list) {
    if (!list.length) {
      fill('recent', fig('recent.count', 0, 'no decisions yet', 'p'));
      return;
    }
    const head = el('details', { class: 'decision head' },
      el('summary', { tabindex: -1 }, ['time', 'record', 'object', 'owner', 'territory', 'strategy', ''].map((h) => el('span', {}, h))));
    const items = list.map((d) => {
      const key = recentKey(d);
      const item = el('details', { class: 'decision', 'data-key': key, open: state.opened.has(key) },
        el('summary', {},
          el('span', { title: whenFull(d.decided_at) }, when(d.decided_at)),
          el('span', { class: 'mono' }, fig('recent.record_id', d.record_id, d.record_id)),
          el('span', {}, d.object),
          el('span', { title: d.owner || '' }, fig('recent.owner', d.owner || '', repName(d.owner))),
          el('span', { class: 'mono' }, d.territory || '—'),
          el('span', {}, strategyTag(d.strategy)),
          el('span', {}, d.changed ? el('span', { class: 'tag changed' }, 'changed') : '')),
        el('div', { class: 'why' },
          explanation(d),
          el('span', { class: 'link', onclick: () => explain(d.record_id) }, 'full history of this record')));
      item.addEventListener('toggle', () => {
        if (item.open) state.opened.add(key);
        else state.opened.delete(key);
      });
      return item;
    });
    fill('recent', el('div', { class: 'list' }, head, items), el('p', { class: 'note' }, fig('recent.count', list.length), ' shown'));
  }

  function explanation(d) {
    return el('ol', { class: 'explanation' }, (d.explanation || []).map((line) => el('li', { class: 'line' }, line)));
  }

  // ---------------------------------------------------------------- explain

  function candidateText(c) {
    if (c.outcome === 'won') return `${c.territory}: won`;
    return `${c.territory}: lost to ${String(c.strategy || '').replace(/_/g, ' ')}${c.reason ? ` (${c.reason})` : ''}`;
  }

  async function explain(id) {
    const record = (id || '').trim();
    const panel = document.getElementById('explain');
    if (!record) {
      panel.hidden = true;
      return;
    }
    document.getElementById('record').value = record;
    const url = new URL(window.location.href);
    url.searchParams.set('record', record);
    window.history.replaceState(null, '', url);
    panel.hidden = false;
    document.body.dataset.search = 'loading';
    fill('explain', el('p', { class: 'message' }, `looking up ${record} …`));
    let body;
    try {
      body = await getJson(`/api/records/${encodeURIComponent(record)}/decisions`, true);
    } catch (e) {
      if (e instanceof AuthNeeded) {
        document.body.dataset.search = 'auth';
        fill('explain', el('p', { class: 'message error' }, 'the API asks for a token: enter it above and the search runs again'));
        askToken();
        return;
      }
      document.body.dataset.search = 'error';
      fill('explain', el('p', { class: 'message error' }, e.message));
      return;
    }
    if (!body || !body.decisions || !body.decisions.length) {
      document.body.dataset.search = 'none';
      fill('explain',
        fig('search.record_id', record, '', 'span'),
        fig('search.count', 0, `No decision recorded for ${record}.`, 'p'));
      return;
    }
    const list = body.decisions;
    const last = list[list.length - 1];
    const entries = list.slice().reverse().map((d, i) =>
      el('div', { class: `entry ${i === 0 ? 'latest' : ''}`, 'data-figure': 'search.decision', 'data-value': d.decided_at },
        el('h3', {}, `${whenFull(d.decided_at)} → ${repName(d.owner)}`, d.owner && state.reps.has(d.owner) ? el('span', { class: 'mono' }, ` (${d.owner})`) : null),
        el('div', { class: 'meta' },
          el('span', {}, 'strategy ', strategyTag(d.strategy)),
          el('span', {}, `territory ${d.territory || '—'}`),
          el('span', {}, `previous owner ${repName(d.previous_owner)}`),
          el('span', {}, d.changed ? 'owner changed' : 'owner kept'),
          el('span', {}, `rules ${d.rules_version}`),
          d.distribution ? el('span', {}, `picked by ${d.distribution.method}${d.distribution.team ? ` in team ${d.distribution.team}` : ''}`) : null,
          d.fallback_reason ? el('span', {}, `fallback: ${d.fallback_reason}`) : null),
        d.candidates && d.candidates.length
          ? el('ul', { class: 'candidates' }, d.candidates.map((c) => el('li', {}, candidateText(c))))
          : null,
        explanation(d),
        (d.warnings || []).map((w) => el('p', { class: 'note' }, `warning: ${w}`))));
    fill('explain',
      el('p', { class: 'message' },
        'Record ', fig('search.record_id', record, record, 'strong'),
        ' is owned by ', fig('search.owner', last.owner || '', repName(last.owner), 'strong'),
        ` (${last.object}); `, fig('search.count', list.length), list.length === 1 ? ' decision' : ' decisions', ', newest first.'),
      el('div', { class: 'history' }, entries));
    document.body.dataset.search = 'done';
  }

  // ------------------------------------------------------------------- start

  function start() {
    document.getElementById('search').addEventListener('submit', (e) => {
      e.preventDefault();
      explain(document.getElementById('record').value);
    });
    const auth = document.getElementById('auth');
    auth.addEventListener('submit', (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, auth.elements.token.value.trim());
      auth.elements.token.value = '';
      auth.hidden = true;
      setStatus('loading', 'connecting…');
      poll();
      const record = document.getElementById('record').value;
      if (record && document.body.dataset.search === 'auth') explain(record);
    });
    document.getElementById('forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      auth.elements.token.value = '';
    });
    const record = new URLSearchParams(window.location.search).get('record');
    poll().then(() => {
      if (record) explain(record);
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
