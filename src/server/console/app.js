// ccc-dialer console: a client of the /v1 API, served by `ccc-dialer serve` itself.
//
// Rules kept throughout:
// - every value from the API reaches the page as text (textContent, attributes set one by one),
//   never as markup: a contact's name or number is user data;
// - the token lives in this tab's sessionStorage and travels only in the Authorization header;
// - live views poll at most every 2 s, one request at a time, and stop when the view changes.
'use strict';

(function () {
  const TOKEN_KEY = 'ccc-dialer.token';
  const POLL_MS = 2000;
  const PAGE_SIZE = 50;
  const CHART_POINTS = 150; // 5 minutes at one sample per 2 s
  const STATUSES = ['pending', 'in_flight', 'placed', 'failed', 'not_placed', 'skipped', 'unknown', 'cancelled', 'expired'];
  const OUTCOMES = ['answered', 'not_answered', 'busy', 'rejected', 'unreachable', 'invalid_number', 'voicemail', 'blocked', 'throttled', 'other', 'no_record'];
  const FINAL = new Set(['placed', 'failed', 'not_placed', 'skipped', 'unknown', 'cancelled', 'expired']);
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const app = {
    token: sessionStorage.getItem(TOKEN_KEY),
    tokenRequired: null,
    features: { paused: false },
    view: 0, // bumped on every render: a poll of an older view stops
    timers: [],
  };

  // ---------- small DOM helpers (text only) ----------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') el.textContent = String(v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function svg(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  const main = () => document.getElementById('main');

  // ---------- formatting ----------

  function num(n) {
    return Number(n || 0).toLocaleString('en-US');
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    const s = Math.round(seconds);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    const hours = Math.floor(s / 3600);
    return hours + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function when(iso) {
    if (!iso) return '—';
    const d = new Date(typeof iso === 'number' ? iso : iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toLocaleString() + ' (' + d.toISOString().replace('.000Z', 'Z') + ')';
  }

  // A short local clock time ("14:05") for chart labels.
  function clock(iso) {
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function finalCount(c) {
    let n = 0;
    for (const [s, v] of Object.entries(c.counts || {})) if (FINAL.has(s)) n += v;
    return n;
  }

  // ---------- the API ----------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({}, opts.headers || {});
    if (app.token) headers.Authorization = 'Bearer ' + app.token;
    let r;
    try {
      r = await fetch(path, Object.assign({}, opts, { headers, cache: 'no-store', credentials: 'omit' }));
    } catch (e) {
      throw new ApiError(0, 'network', 'the service did not answer (' + e.message + ')');
    }
    if (r.ok) return r;
    let code = 'http_' + r.status;
    let message = r.status + ' ' + r.statusText;
    try {
      const body = await r.json();
      if (body && body.error) {
        code = body.error.code;
        message = body.error.message;
      }
    } catch (_) { /* not JSON: the status line says it */ }
    if (r.status === 401 && app.tokenRequired !== false) {
      signOut('The service refused the token (401 Unauthorized): sign in again.');
    }
    throw new ApiError(r.status, code, message);
  }

  async function apiJson(path, opts) {
    return (await api(path, opts)).json();
  }

  // ---------- sign-in ----------

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    app.token = null;
    showSignIn(message);
  }

  function showSignIn(message) {
    app.view++;
    document.getElementById('nav').hidden = true;
    const error = h('p', { id: 'sign-in-error', class: 'error', role: 'alert' }, message || '');
    const input = h('input', {
      id: 'token', type: 'password', autocomplete: 'off', required: true,
      spellcheck: 'false', 'aria-describedby': 'token-hint',
    });
    const form = h('form', { id: 'sign-in', class: 'card narrow', novalidate: true },
      h('h1', { text: 'Sign in' }),
      h('label', { for: 'token', text: 'API token' }),
      input,
      h('p', { id: 'token-hint', class: 'hint', text: 'The value of CCC_DIALER_API_TOKEN (or of the file CCC_DIALER_API_TOKEN_FILE names) of this service. It is kept in this tab only, until you sign out or close it.' }),
      error,
      h('button', { type: 'submit', id: 'sign-in-button', text: 'Sign in' }));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (!token) {
        error.textContent = 'Type the API token.';
        return;
      }
      error.textContent = 'Checking…';
      let r;
      try {
        r = await fetch('/v1/campaigns', {
          headers: { Authorization: 'Bearer ' + token }, cache: 'no-store', credentials: 'omit',
        });
      } catch (e) {
        error.textContent = 'The service did not answer: ' + e.message;
        return;
      }
      if (r.status === 401) {
        error.textContent = 'Wrong token: the service refused it (401 Unauthorized). Check the value and try again.';
        input.select();
        return;
      }
      if (!r.ok) {
        error.textContent = 'The service answered ' + r.status + ' ' + r.statusText + '.';
        return;
      }
      app.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      start();
    });
    clear(main()).appendChild(form);
    input.focus();
  }

  // ---------- start and routing ----------

  async function boot() {
    document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));
    window.addEventListener('hashchange', route);
    // Does this service want a token? A request without one says (a loopback service may run
    // without a token; then there is no sign-in).
    let r;
    try {
      r = await fetch('/v1/campaigns', {
        headers: app.token ? { Authorization: 'Bearer ' + app.token } : {},
        cache: 'no-store', credentials: 'omit',
      });
    } catch (e) {
      clear(main()).appendChild(h('p', { class: 'error', role: 'alert', text: 'The service did not answer: ' + e.message }));
      return;
    }
    if (r.status === 401) {
      app.tokenRequired = true;
      if (app.token) signOut('The service refused the saved token (401 Unauthorized): sign in again.');
      else showSignIn('');
      return;
    }
    // Answered without a token: this (loopback) service runs without one, and needs no sign-in.
    app.tokenRequired = !!app.token;
    start();
  }

  async function start() {
    document.getElementById('nav').hidden = false;
    document.getElementById('sign-out').hidden = !app.token;
    try {
      const doc = await (await fetch('/v1/openapi.json', { cache: 'no-store', credentials: 'omit' })).json();
      const props = ((doc.components || {}).schemas || {}).CampaignSettings;
      app.features.paused = !!(props && props.properties && props.properties.paused);
    } catch (_) {
      app.features.paused = false;
    }
    health();
    route();
  }

  function stopTimers() {
    app.view++;
    for (const t of app.timers) clearTimeout(t);
    app.timers = [];
  }

  // Run `fn` now and then every POLL_MS after it finishes, while the view is current.
  function poll(fn) {
    const view = app.view;
    const tick = async () => {
      if (view !== app.view) return;
      try { await fn(); } catch (e) { if (view === app.view) showError(e); }
      if (view === app.view) app.timers.push(setTimeout(tick, POLL_MS));
    };
    tick();
  }

  function route() {
    if (app.tokenRequired && !app.token) return showSignIn('');
    stopTimers();
    const hash = location.hash || '#/';
    let m;
    if ((m = hash.match(/^#\/campaign\/(\d+)$/))) return campaignPage(Number(m[1]));
    if (hash === '#/new') return newCampaignPage();
    return campaignsPage();
  }

  function showError(e) {
    const box = document.getElementById('page-error');
    if (box) box.textContent = e instanceof ApiError ? e.message : String(e);
  }

  function pageShell(title, ...rest) {
    const root = clear(main());
    append(root, [h('h1', { id: 'page-title', text: title }),
      h('p', { id: 'page-error', class: 'error', role: 'alert' }), rest]);
    document.title = title + ' · ccc-dialer';
    root.focus({ preventScroll: true });
    return root;
  }

  // ---------- health banner ----------

  async function health() {
    if (app.healthStarted) return;
    app.healthStarted = true;
    const banner = document.getElementById('banner');
    const check = async () => {
      const problems = [];
      try {
        const r = await fetch('/readyz', { cache: 'no-store', credentials: 'omit' });
        const body = await r.json();
        for (const [name, c] of Object.entries(body.checks || {})) {
          if (!c.ok) problems.push(name === 'outcomes' ? c.detail : name + ': ' + c.detail);
        }
      } catch (e) {
        problems.push('the service did not answer its readiness check (' + e.message + ')');
      }
      clear(banner);
      if (problems.length) {
        banner.hidden = false;
        append(banner, [h('strong', { text: 'Attention: ' }), problems.join(' · ')]);
      } else {
        banner.hidden = true;
      }
      setTimeout(check, 10000);
    };
    check();
  }

  // ---------- campaigns ----------

  function stateBadge(state) {
    return h('span', { class: 'state state-' + state, text: state });
  }

  function progress(c) {
    const done = finalCount(c);
    const total = c.total || 0;
    const pct = total ? Math.floor((100 * done) / total) : 0;
    return h('div', { class: 'progress-cell' },
      h('progress', { max: total || 1, value: done, 'aria-label': num(done) + ' of ' + num(total) + ' contacts final' }),
      h('span', { class: 'small', text: num(done) + ' / ' + num(total) + ' (' + pct + '%)' }));
  }

  function countsList(c) {
    const items = [];
    for (const s of STATUSES) {
      const n = (c.counts || {})[s] || 0;
      if (n) items.push(h('li', { class: 'count count-' + s, 'data-status': s }, h('span', { text: s.replace('_', ' ') }), ' ', h('b', { text: num(n) })));
    }
    const o = c.outcomes; // present when the service tracks call outcomes
    if (o && o.by_outcome) {
      for (const [k, v] of Object.entries(o.by_outcome)) {
        if (v) items.push(h('li', { class: 'count outcome', 'data-outcome': k }, h('span', { text: k.replace('_', ' ') }), ' ', h('b', { text: num(v) })));
      }
      if (o.awaiting) items.push(h('li', { class: 'count outcome' }, h('span', { text: 'outcome awaited' }), ' ', h('b', { text: num(o.awaiting) })));
      if (o.answer_rate !== null && o.answer_rate !== undefined) {
        items.push(h('li', { class: 'count outcome', id: 'answer-rate' }, h('span', { text: 'answer rate' }), ' ', h('b', { text: (100 * o.answer_rate).toFixed(1) + '%' })));
      }
    }
    return h('ul', { class: 'counts', 'aria-label': 'Contacts by status and call outcome' }, items);
  }

  function rate(c) {
    return h('span', { class: 'rate' }, (c.rate_per_second || 0).toFixed(1) + ' / ' + num(c.rate_cap_per_second) + ' req/s');
  }

  function campaignsPage() {
    const updated = h('p', { id: 'updated', class: 'small muted', 'aria-live': 'off' });
    const body = h('tbody', { id: 'campaign-rows' });
    const table = h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': 'Campaigns table' }, h('table', { class: 'campaigns' },
      h('caption', { class: 'sr-only', text: 'Campaigns, updated every 2 seconds' }),
      h('thead', {}, h('tr', {}, ['Campaign', 'State', 'Progress', 'Contacts', 'Rate / cap', 'ETA'].map((t) => h('th', { scope: 'col', text: t })))),
      body));
    pageShell('Campaigns', h('p', {}, h('a', { href: '#/new', class: 'button', text: 'New campaign' })), updated, table);
    poll(async () => {
      const list = (await apiJson('/v1/campaigns')).campaigns;
      clear(body);
      if (!list.length) {
        body.appendChild(h('tr', {}, h('td', { colspan: 6, text: 'No campaigns yet. Upload a contacts file under "New campaign".' })));
      }
      for (const c of list.slice().reverse()) {
        body.appendChild(h('tr', { 'data-id': c.id },
          h('th', { scope: 'row' }, h('a', { href: '#/campaign/' + c.id, text: c.name }),
            c.reason ? h('div', { class: 'reason small', text: c.reason }) : null,
            c.outage ? h('div', { class: 'reason small', text: c.outage.message }) : null),
          h('td', { 'data-label': 'State' }, stateBadge(c.state)),
          h('td', { 'data-label': 'Progress' }, progress(c)),
          h('td', { 'data-label': 'Contacts' }, countsList(c)),
          h('td', { 'data-label': 'Rate / cap' }, rate(c)),
          h('td', { 'data-label': 'ETA', text: duration(c.eta_seconds) })));
      }
      updated.textContent = 'Updated ' + new Date().toLocaleTimeString() + ' (every 2 s)';
    });
  }

  // ---------- one campaign ----------

  function chart(samples, cap) {
    const W = 600, H = 180, L = 36, B = 22, T = 8, R = 8;
    const top = Math.max(cap || 1, ...samples.map((s) => s.rate)) * 1.1;
    const x = (i) => L + ((W - L - R) * i) / (CHART_POINTS - 1);
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img', 'aria-labelledby': 'chart-title' });
    const title = svg('title', { id: 'chart-title' });
    const last = samples.length ? samples[samples.length - 1].rate : 0;
    title.textContent = 'Requests per second over the last ' + Math.round((samples.length * POLL_MS) / 1000) + ' s: now ' + last.toFixed(1) + ', cap ' + cap;
    root.appendChild(title);
    for (const v of [0, cap / 2, cap]) {
      root.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      const t = svg('text', { x: L - 4, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' });
      t.textContent = String(Math.round(v * 10) / 10);
      root.appendChild(t);
    }
    root.appendChild(svg('line', { x1: L, x2: W - R, y1: y(cap), y2: y(cap), class: 'cap' }));
    const capLabel = svg('text', { x: W - R, y: y(cap) - 4, class: 'axis cap-label', 'text-anchor': 'end' });
    capLabel.textContent = 'cap ' + cap + '/s';
    root.appendChild(capLabel);
    const offset = CHART_POINTS - samples.length;
    const pts = samples.map((s, i) => x(offset + i).toFixed(1) + ',' + y(s.rate).toFixed(1)).join(' ');
    if (samples.length > 1) root.appendChild(svg('polyline', { points: pts, class: 'series' }));
    const foot = svg('text', { x: L, y: H - 6, class: 'axis' });
    foot.textContent = '← 5 min (10 s average, sampled every 2 s while this page is open)';
    root.appendChild(foot);
    return root;
  }

  // Calls by outcome per interval, from the campaign's history (GET …/outcomes/history: counts
  // the store keeps per minute, so the chart covers the campaign's life, not only the time this
  // page was open). One stacked bar per interval.
  function outcomesChart(hist) {
    const W = 600, H = 180, L = 36, B = 22, T = 8, R = 8;
    const iv = hist.intervals || [];
    const top = Math.max(1, ...iv.map((i) => i.calls)) * 1.1;
    // At least 30 slots: a young campaign's few intervals stay bars, not a block.
    const slot = (W - L - R) / Math.max(30, iv.length);
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const totals = outcomeTotals(hist);
    const shown = OUTCOMES.filter((k) => totals[k]);
    const step = hist.step_seconds >= 3600 ? (hist.step_seconds / 3600) + ' h' : (hist.step_seconds / 60) + ' min';
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img', 'aria-labelledby': 'outcomes-chart-title' });
    const title = svg('title', { id: 'outcomes-chart-title' });
    title.textContent = 'Calls by outcome per ' + step + ' since ' + clock(hist.from) + ': ' +
      (shown.length ? shown.map((k) => k.replace('_', ' ') + ' ' + totals[k]).join(', ') : 'no outcome yet');
    root.appendChild(title);
    const most = Math.round(top / 1.1);
    for (const v of [0, Math.round(most / 2), most]) {
      root.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      const t = svg('text', { x: L - 4, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' });
      t.textContent = String(v);
      root.appendChild(t);
    }
    iv.forEach((i, n) => {
      let base = 0;
      for (const k of OUTCOMES) {
        const calls = (i.by_outcome || {})[k] || 0;
        if (!calls) continue;
        root.appendChild(svg('rect', {
          x: (L + n * slot + slot * 0.1).toFixed(1), width: Math.max(1, slot * 0.8).toFixed(1),
          y: y(base + calls).toFixed(1), height: (y(base) - y(base + calls)).toFixed(1),
          class: 'bar oc-' + k, 'data-outcome': k, 'data-calls': calls, 'data-start': i.start,
        }));
        base += calls;
      }
    });
    const foot = svg('text', { x: L, y: H - 6, class: 'axis' });
    foot.textContent = '← since ' + clock(hist.from) + ' (calls by the ' + step + ' they ended in)';
    root.appendChild(foot);
    return root;
  }

  function outcomeTotals(hist) {
    const totals = {};
    for (const i of hist.intervals || []) {
      for (const [k, n] of Object.entries(i.by_outcome || {})) totals[k] = (totals[k] || 0) + n;
    }
    return totals;
  }

  function outcomesLegend(hist, c) {
    const totals = outcomeTotals(hist);
    const shown = OUTCOMES.filter((k) => totals[k]);
    const o = c.outcomes;
    const redials = h('p', { id: 'redials', class: 'small' },
      'Reached: ', h('span', { id: 'reached', text: num(o.reached || 0) }),
      ' · not reached: ', num(o.not_reached || 0),
      ' · redials pending: ', h('span', { id: 'redials-pending', text: num(o.redials_pending || 0) }));
    if (!shown.length) return h('figcaption', { class: 'small' }, 'Calls by outcome: none recorded yet.', redials);
    return h('figcaption', { class: 'small' }, 'Calls by outcome: ',
      h('ul', { class: 'legend', id: 'outcomes-legend' }, shown.map((k) => h('li', { 'data-outcome': k },
        h('span', { class: 'swatch oc-' + k, 'aria-hidden': 'true' }), k.replace('_', ' ') + ' ' + num(totals[k])))), redials);
  }

  // Answer rate and reach by dial (1 = each contact's first placed call), from the report.
  function dialsTable(r) {
    const o = r.outcomes;
    const pct = (v) => (v === null || v === undefined ? '—' : (100 * v).toFixed(1) + '%');
    if (!o.by_dial.length) return h('p', { id: 'by-dial-empty', text: o.tracked ? 'No placed call yet.' : o.note });
    return h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': 'Answer rate by dial' }, h('table', { id: 'by-dial-table' },
      h('caption', { class: 'sr-only', text: 'Answer rate and reach by dial' }),
      h('thead', {}, h('tr', {}, ['Dial', 'Calls', 'With a record', 'Answered', 'Answer rate', 'Reach (answered by this dial)'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, o.by_dial.map((d) => h('tr', { 'data-dial': d.dial },
        h('th', { scope: 'row', text: d.dial }), h('td', { text: num(d.calls) }), h('td', { text: num(d.ended) }),
        h('td', { text: num(d.answered) }), h('td', { class: 'answer-rate', text: pct(d.answer_rate) }), h('td', { text: pct(d.reach) }))))));
  }

  function campaignPage(id) {
    const samples = [];
    const head = h('div', { id: 'campaign-head' });
    const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Campaign actions' });
    const pauseBtn = h('button', { type: 'button', id: 'pause', text: 'Pause' });
    const resumeBtn = h('button', { type: 'button', id: 'resume', text: 'Resume' });
    const cancelBtn = h('button', { type: 'button', id: 'cancel', class: 'danger', text: 'Cancel…' });
    const downloadBtn = h('button', { type: 'button', id: 'download', text: 'Download results (CSV)' });
    const actionMsg = h('p', { id: 'action-message', class: 'small', role: 'status' });
    append(actions, [pauseBtn, resumeBtn, cancelBtn, downloadBtn]);
    const summary = h('div', { id: 'summary', class: 'summary' });
    const chartBox = h('figure', { id: 'chart', class: 'card' });
    const outcomesBox = h('figure', { id: 'outcomes-chart', class: 'card', hidden: true });
    const charts = h('div', { class: 'charts' }, chartBox, outcomesBox);
    const dialsBody = h('div', { id: 'by-dial' });
    const dialsRefresh = h('button', { type: 'button', id: 'by-dial-refresh', text: 'Refresh' });
    const dialsAt = h('span', { id: 'by-dial-at', class: 'small muted' });
    const dials = h('section', { class: 'card', 'aria-labelledby': 'by-dial-title', hidden: true },
      h('h2', { id: 'by-dial-title', text: 'Answer rate by dial' }),
      h('p', { class: 'small' }, 'From the campaign\'s report (read when the page opens, when the campaign\'s state changes, and on Refresh). ', dialsRefresh, ' ', dialsAt),
      dialsBody);
    const root = pageShell('Campaign ' + id, h('p', {}, h('a', { href: '#/', text: '← All campaigns' })), head, actions, actionMsg, summary, charts, dials);
    let historyKey = null;
    let historyAt = 0;
    let reportState = null;
    const view = app.view;
    const loadDials = async () => {
      dialsAt.textContent = 'Loading…';
      try {
        const r = await apiJson('/v1/campaigns/' + id + '/report');
        if (view !== app.view) return;
        clear(dialsBody).appendChild(dialsTable(r));
        dialsAt.textContent = 'As of ' + new Date().toLocaleTimeString() + '.';
      } catch (e) {
        dialsAt.textContent = 'Cannot read the report: ' + e.message;
      }
    };
    dialsRefresh.addEventListener('click', loadDials);
    const contacts = contactsSection(id);
    root.appendChild(contacts.section);
    const dialog = cancelDialog();
    root.appendChild(dialog.el);

    const act = async (what) => {
      actionMsg.textContent = what + '…';
      try {
        const c = await apiJson('/v1/campaigns/' + id + '/' + what, { method: 'POST' });
        render(c);
        actionMsg.textContent = 'Done: the campaign is ' + c.state + '.';
      } catch (e) {
        actionMsg.textContent = 'Refused: ' + e.message;
      }
    };
    pauseBtn.addEventListener('click', () => act('pause'));
    resumeBtn.addEventListener('click', () => act('resume'));
    cancelBtn.addEventListener('click', async () => {
      try {
        const c = await apiJson('/v1/campaigns/' + id);
        dialog.ask(c, () => act('cancel'));
      } catch (e) {
        actionMsg.textContent = e.message;
      }
    });
    downloadBtn.addEventListener('click', async () => {
      actionMsg.textContent = 'Preparing the results…';
      try {
        const blob = await (await api('/v1/campaigns/' + id + '/results')).blob();
        const url = URL.createObjectURL(blob);
        const a = h('a', { href: url, download: 'campaign-' + id + '-results.csv' });
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        actionMsg.textContent = 'Results downloaded (campaign-' + id + '-results.csv).';
      } catch (e) {
        actionMsg.textContent = 'Cannot download: ' + e.message;
      }
    });

    function render(c) {
      document.getElementById('page-title').textContent = c.name;
      document.title = c.name + ' · ccc-dialer';
      clear(head);
      append(head, [
        h('p', {}, 'State: ', h('span', { id: 'campaign-state' }, stateBadge(c.state)),
          ' · priority ', String(c.priority), ' · created ', when(c.created_at)),
        c.reason ? h('p', { id: 'campaign-reason', class: 'reason' }, h('strong', { text: 'Why: ' }), c.reason) : null,
        c.outage ? h('p', { class: 'reason' }, h('strong', { text: 'Endpoint: ' }), c.outage.message) : null,
        c.outcomes && c.outcomes.stopped
          ? h('p', { id: 'outcomes-stopped', class: 'reason', role: 'alert' }, h('strong', { text: 'Outcome tracking stopped: ' }), c.outcomes.stopped)
          : null,
      ]);
      const open = c.state === 'active' || c.state === 'paused';
      pauseBtn.disabled = c.state !== 'active';
      resumeBtn.disabled = c.state !== 'paused';
      cancelBtn.disabled = !open;
      clear(summary);
      append(summary, [
        progress(c),
        h('p', {}, 'Rate: ', rate(c), ' · ETA ', h('span', { id: 'eta', text: duration(c.eta_seconds) })),
        countsList(c),
      ]);
    }

    poll(async () => {
      const c = await apiJson('/v1/campaigns/' + id);
      samples.push({ t: Date.now(), rate: c.rate_per_second || 0 });
      if (samples.length > CHART_POINTS) samples.shift();
      render(c);
      clear(chartBox);
      append(chartBox, [chart(samples, c.rate_cap_per_second || 1),
        h('figcaption', { class: 'small', text: 'Requests per second (' + (c.rate_per_second || 0).toFixed(1) + ') against its cap (' + c.rate_cap_per_second + '/s).' })]);
      if (c.outcomes) {
        // The history is read again when the campaign's outcome counts move (and every 30 s,
        // for the interval edges): one range read of kept per-minute counts.
        const key = JSON.stringify(c.outcomes.by_outcome) + c.outcomes.redials_pending + c.state;
        if (key !== historyKey || Date.now() - historyAt > 30000) {
          const hist = await apiJson('/v1/campaigns/' + id + '/outcomes/history');
          historyKey = key;
          historyAt = Date.now();
          if (view !== app.view) return;
          outcomesBox.hidden = false;
          clear(outcomesBox);
          append(outcomesBox, [outcomesChart(hist), outcomesLegend(hist, c)]);
        }
        dials.hidden = false;
        if (reportState !== c.state) {
          reportState = c.state;
          loadDials();
        }
      }
      if (!contacts.loaded) contacts.load();
    });
  }

  function cancelDialog() {
    const text = h('p', { id: 'cancel-text' });
    const yes = h('button', { type: 'button', id: 'cancel-confirm', class: 'danger' });
    const no = h('button', { type: 'button', id: 'cancel-keep', text: 'Keep the campaign' });
    const el = h('dialog', { id: 'cancel-dialog', 'aria-labelledby': 'cancel-title', 'aria-describedby': 'cancel-text' },
      h('h2', { id: 'cancel-title', text: 'Cancel this campaign?' }), text, h('div', { class: 'actions' }, yes, no));
    let onYes = null;
    yes.addEventListener('click', () => { el.close(); if (onYes) onYes(); });
    no.addEventListener('click', () => el.close());
    return {
      el,
      ask(c, then) {
        onYes = then;
        const pending = (c.counts || {}).pending || 0;
        const inFlight = (c.counts || {}).in_flight || 0;
        text.textContent = 'Cancelling "' + c.name + '" cancels ' + num(pending) + ' contacts that have not been called yet: they will never be called. ' +
          (inFlight ? num(inFlight) + ' calls already on the wire finish and are recorded. ' : '') + 'This cannot be undone.';
        yes.textContent = 'Cancel ' + num(pending) + ' contacts';
        el.showModal();
        no.focus();
      },
    };
  }

  // A call's post-call tags (`tags` on a session of the contact view, each {name, type, value,
  // content}), when this service reports them; "—" while it does not.
  function sessionTags(x) {
    if (!Array.isArray(x.tags)) return h('td', { class: 'tags', text: '—' });
    if (!x.tags.length) return h('td', { class: 'tags', text: 'none yet' });
    return h('td', { class: 'tags' }, h('ul', { class: 'tag-list' },
      x.tags.map((t) => h('li', { title: t.content || null }, h('b', { text: t.name }), ': ' + t.value))));
  }

  function contactsSection(id) {
    const state = { cursors: [''], index: 0, status: '', outcome: '', q: '' };
    const statusSel = h('select', { id: 'filter-status', name: 'status' },
      h('option', { value: '', text: 'any status' }), STATUSES.map((s) => h('option', { value: s, text: s })));
    const outcomeSel = h('select', { id: 'filter-outcome', name: 'outcome' },
      h('option', { value: '', text: 'any outcome' }), OUTCOMES.map((s) => h('option', { value: s, text: s.replace('_', ' ') })));
    const qInput = h('input', { id: 'filter-q', name: 'q', type: 'search', inputmode: 'tel', autocomplete: 'off', placeholder: 'e.g. 138 0001 6305' });
    const form = h('form', { id: 'contacts-filter', class: 'filters', role: 'search', 'aria-label': 'Filter contacts' },
      h('label', { for: 'filter-status', text: 'Status' }), statusSel,
      h('label', { for: 'filter-outcome', text: 'Outcome' }), outcomeSel,
      h('label', { for: 'filter-q', text: 'Number' }), qInput,
      h('button', { type: 'submit', text: 'Show' }));
    const tbody = h('tbody', { id: 'contact-rows' });
    const table = h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': 'Contacts table' }, h('table', { class: 'contacts' },
      h('caption', { class: 'sr-only', text: 'Contacts of this campaign' }),
      h('thead', {}, h('tr', {}, ['Line', 'Number', 'Name', 'ID', 'Status', 'Outcome', 'Attempts', 'Next try', 'Last error'].map((t) => h('th', { scope: 'col', text: t })))),
      tbody));
    const prev = h('button', { type: 'button', id: 'contacts-prev', text: '← Previous' });
    const next = h('button', { type: 'button', id: 'contacts-next', text: 'Next →' });
    const info = h('span', { id: 'contacts-page', class: 'small', 'aria-live': 'polite' });
    const panel = h('section', { id: 'contact-panel', class: 'card', 'aria-live': 'polite', hidden: true });
    const section = h('section', { class: 'card', 'aria-labelledby': 'contacts-title' },
      h('h2', { id: 'contacts-title', text: 'Contacts' }), form, table,
      h('div', { class: 'pager' }, prev, info, next), panel);
    const self = { section, loaded: false, load };

    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      state.status = statusSel.value;
      state.outcome = outcomeSel.value;
      state.q = qInput.value.trim();
      state.cursors = [''];
      state.index = 0;
      load();
    });
    next.addEventListener('click', () => { state.index++; load(); });
    prev.addEventListener('click', () => { if (state.index > 0) { state.index--; load(); } });

    async function load() {
      self.loaded = true;
      const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (state.status) params.set('status', state.status);
      if (state.outcome) params.set('outcome', state.outcome);
      if (state.q) params.set('q', state.q);
      if (state.cursors[state.index]) params.set('cursor', state.cursors[state.index]);
      info.textContent = 'Loading…';
      let page;
      try {
        page = await apiJson('/v1/campaigns/' + id + '/contacts?' + params.toString());
      } catch (e) {
        info.textContent = e.message;
        return;
      }
      state.cursors.length = state.index + 1;
      if (page.next_cursor) state.cursors.push(page.next_cursor);
      clear(tbody);
      for (const c of page.contacts) {
        const open = h('button', { type: 'button', class: 'link', 'data-callee': c.callee, 'aria-label': 'Details of ' + c.callee, text: c.callee });
        open.addEventListener('click', () => showContact(c.callee));
        tbody.appendChild(h('tr', { 'data-line': c.line },
          h('td', { text: c.line }), h('td', {}, open), h('td', { class: 'name', text: c.name || '' }),
          h('td', { text: c.ext_id || '' }), h('td', {}, h('span', { class: 'state state-' + c.status, text: c.status })),
          h('td', { class: 'outcome', text: c.outcome ? c.outcome.replace('_', ' ') : '' }),
          h('td', { text: c.attempts }), h('td', { text: c.next_at ? when(c.next_at) : '' }),
          h('td', { text: c.error_code ? c.error_code + (c.error_message ? ': ' + c.error_message : '') : '' })));
      }
      if (!page.contacts.length) {
        tbody.appendChild(h('tr', {}, h('td', { colspan: 9, text: page.next_cursor ? 'No match in these lines; "Next" searches on.' : 'No contacts match.' })));
      }
      prev.disabled = state.index === 0;
      next.disabled = !page.next_cursor;
      info.textContent = 'Page ' + (state.index + 1) + (page.contacts.length ? ', lines ' + page.contacts[0].line + '–' + page.contacts[page.contacts.length - 1].line : '') + (page.next_cursor ? '' : ' (last page)');
    }

    async function showContact(callee) {
      panel.hidden = false;
      clear(panel).appendChild(h('p', { text: 'Loading ' + callee + '…' }));
      let d;
      try {
        d = await apiJson('/v1/campaigns/' + id + '/contacts/' + encodeURIComponent(callee));
      } catch (e) {
        clear(panel).appendChild(h('p', { class: 'error', text: e.message }));
        return;
      }
      const w = d.waiting;
      clear(panel);
      append(panel, [
        h('h3', { id: 'contact-title', text: 'Contact ' + d.callee }),
        h('dl', { class: 'facts' },
          h('dt', { text: 'Status' }), h('dd', { id: 'contact-status', text: d.status }),
          h('dt', { text: 'Line' }), h('dd', { text: d.line }),
          h('dt', { text: 'ID' }), h('dd', { text: d.ext_id || '—' }),
          h('dt', { text: 'Attempts used' }), h('dd', { text: d.attempts_used }),
          h('dt', { text: 'Calls (dials)' }), h('dd', { id: 'contact-dials', text: d.dials === undefined ? '—' : d.dials }),
          h('dt', { text: 'Session' }), h('dd', { text: d.session_id || '—' }),
          h('dt', { text: 'Last error' }), h('dd', { text: d.error_code ? d.error_code + (d.error_message ? ': ' + d.error_message : '') : '—' }),
          h('dt', { text: 'Why not now' }), h('dd', { id: 'why-not-now' }, w && w.gate === 'redial_after'
            ? [h('b', { text: 'redial due' }), ' at ' + when(w.until), w.reason ? ' (' + w.reason + ')' : '']
            : w
            ? [h('b', { text: w.gate }), w.reason ? ': ' + w.reason : '', w.until ? ' — until ' + when(w.until) : '']
            : FINAL.has(d.status) ? 'final: it will not be called again' : 'on the wire now')),
        d.sessions && d.sessions.length ? [
          h('h4', { text: 'Calls and their outcomes' }),
          h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': 'Calls of this contact' }, h('table', { class: 'sessions' },
            h('thead', {}, h('tr', {}, ['Session', 'Outcome', 'Talk time', 'Answered', 'Ended', 'Hung up by', 'Tags'].map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', {}, d.sessions.map((x) => {
              const oc = x.outcome || {};
              return h('tr', { 'data-session': x.session_id }, h('td', { text: x.session_id }), h('td', { class: 'session-outcome', text: oc.outcome || 'awaiting the call record' }),
                h('td', { class: 'talk-time', text: oc.duration_s !== undefined && oc.duration_s !== null ? duration(oc.duration_s) : '' }),
                h('td', { text: oc.answered_at ? when(oc.answered_at) : '' }), h('td', { text: oc.ended_at ? when(oc.ended_at) : '' }),
                h('td', { text: oc.hangup_side || '' }), sessionTags(x));
            })))),
        ] : null,
        h('h4', { text: 'Attempts' }),
        d.attempts.length
          ? h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': 'Attempts of this contact' }, h('table', { class: 'attempts' },
            h('thead', {}, h('tr', {}, ['#', 'Started', 'Sent', 'Finished', 'Outcome', 'Code', 'Message', 'Session', 'Caller'].map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', {}, d.attempts.map((a) => h('tr', {},
              h('td', { text: a.n }), h('td', { text: when(a.started_at) }), h('td', { text: a.sent_at ? when(a.sent_at) : '—' }),
              h('td', { text: a.finished_at ? when(a.finished_at) : '—' }), h('td', { text: a.outcome || 'awaiting reply' }),
              h('td', { text: a.code || '' }), h('td', { text: a.message || '' }), h('td', { text: a.session_id || '' }), h('td', { text: a.caller || '' }))))))
          : h('p', { text: 'No attempt yet.' }),
        h('button', { type: 'button', id: 'contact-close', text: 'Close' }),
      ]);
      panel.querySelector('#contact-close').addEventListener('click', () => { panel.hidden = true; });
      panel.querySelector('h3').setAttribute('tabindex', '-1');
      panel.querySelector('h3').focus();
    }

    return self;
  }

  // ---------- new campaign ----------

  function newCampaignPage() {
    let file = null;
    const fileInput = h('input', { id: 'file', type: 'file', accept: '.csv,text/csv' });
    const fileName = h('p', { id: 'file-name', class: 'small', 'aria-live': 'polite', text: 'No file chosen.' });
    const drop = h('div', { id: 'drop', class: 'drop' },
      h('p', { text: 'Drop the contacts CSV here, or choose it:' }),
      h('label', { for: 'file', text: 'Contacts file (CSV)' }),
      fileInput, fileName);
    const setFile = (f) => {
      file = f || null;
      fileName.textContent = file ? file.name + ' (' + num(file.size) + ' bytes)' : 'No file chosen.';
    };
    fileInput.addEventListener('change', () => setFile(fileInput.files[0]));
    drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (ev) => {
      ev.preventDefault();
      drop.classList.remove('over');
      if (ev.dataTransfer && ev.dataTransfer.files.length) setFile(ev.dataTransfer.files[0]);
    });
    const field = (id, label, attrs, hint) => h('div', { class: 'field' },
      h('label', { for: id, text: label }), h('input', Object.assign({ id, name: id, 'aria-describedby': hint ? id + '-hint' : null }, attrs)),
      hint ? h('p', { id: id + '-hint', class: 'hint', text: hint }) : null);
    const report = h('section', { id: 'intake', 'aria-live': 'polite' });
    const error = h('p', { id: 'new-error', class: 'error', role: 'alert' });
    const submit = h('button', { type: 'submit', id: 'upload', text: app.features.paused ? 'Upload and check' : 'Upload and start' });
    const form = h('form', { id: 'new-campaign', class: 'card', novalidate: true },
      drop,
      field('name', 'Name', { type: 'text', autocomplete: 'off' }, 'Letters, digits, - _ . ; left empty, one is made from the file.'),
      field('priority', 'Priority', { type: 'number', min: 0, max: 9, step: 1 }, '0 to 9: a higher one sends more requests at each turn.'),
      field('ai_agent_id', 'AI agent ID', { type: 'number', min: 1, step: 1 }, 'Left empty: the config\'s campaign.ai_agent_id.'),
      field('callers', 'Caller numbers', { type: 'text', autocomplete: 'off' }, 'Comma-separated; left empty: the config\'s.'),
      field('timezone', 'Calling time zone', { type: 'text', autocomplete: 'off', placeholder: 'Asia/Shanghai' }, 'An IANA zone; left empty: the config\'s.'),
      field('weekday_hours', 'Hours Monday to Friday', { type: 'text', autocomplete: 'off', placeholder: '09:00-12:00, 14:00-20:00' }, 'Comma-separated ranges. Fill this or the weekend to set calling hours: a day left empty is then closed.'),
      field('weekend_hours', 'Hours Saturday and Sunday', { type: 'text', autocomplete: 'off', placeholder: '10:00-12:00' }),
      error, submit);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      if (!file) {
        error.textContent = 'Choose or drop a contacts CSV first.';
        return;
      }
      const settings = {};
      const val = (n) => form.querySelector('#' + n).value.trim();
      if (val('name')) settings.name = val('name');
      if (val('priority')) settings.priority = Number(val('priority'));
      if (val('ai_agent_id')) settings.ai_agent_id = Number(val('ai_agent_id'));
      if (val('callers')) settings.callers = val('callers').split(',').map((s) => s.trim()).filter(Boolean);
      const ranges = (s) => s.split(',').map((r) => r.trim()).filter(Boolean);
      if (val('timezone') || val('weekday_hours') || val('weekend_hours')) {
        settings.calling = {};
        if (val('timezone')) settings.calling.timezone = val('timezone');
        if (val('weekday_hours') || val('weekend_hours')) {
          const hours = {};
          for (const d of ['mon', 'tue', 'wed', 'thu', 'fri']) if (val('weekday_hours')) hours[d] = ranges(val('weekday_hours'));
          for (const d of ['sat', 'sun']) if (val('weekend_hours')) hours[d] = ranges(val('weekend_hours'));
          settings.calling.hours = hours;
        }
      }
      if (app.features.paused) settings.paused = true;
      const body = new FormData();
      body.append('contacts', file, file.name);
      body.append('settings', JSON.stringify(settings));
      submit.disabled = true;
      clear(report).appendChild(h('p', { text: 'Uploading and checking ' + file.name + '…' }));
      try {
        const r = await api('/v1/campaigns', { method: 'POST', body });
        showReport(await r.json());
      } catch (e) {
        clear(report);
        error.textContent = 'Refused: ' + e.message;
      } finally {
        submit.disabled = false;
      }
    });
    pageShell('New campaign', form, report);

    function showReport(created) {
      const c = created.campaign;
      const i = created.intake;
      clear(report);
      append(report, [h('h2', { id: 'intake-title', text: 'Intake report: ' + c.name })]);
      if (created.existing) {
        report.appendChild(h('p', { text: 'This campaign was created before with the same contacts and settings; nothing new was imported.' }));
      }
      if (i) {
        report.appendChild(h('dl', { class: 'facts', id: 'intake-facts' },
          h('dt', { text: 'Rows read' }), h('dd', { id: 'intake-rows', text: num(i.rows) }),
          h('dt', { text: 'Accepted' }), h('dd', { id: 'intake-accepted', text: num(i.accepted) }),
          h('dt', { text: 'Skipped' }), h('dd', { id: 'intake-skipped', text: num(i.skipped) }),
          h('dt', { text: 'Duplicates' }), h('dd', { text: num(i.duplicates) }),
          i.ignored_columns.length ? [h('dt', { text: 'Ignored columns' }), h('dd', { text: i.ignored_columns.join(', ') })] : null));
        if (i.skipped_rows.length) {
          report.appendChild(h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': 'Skipped rows' }, h('table', { id: 'skipped-rows' },
            h('caption', { text: 'Skipped rows' + (i.skipped > i.skipped_rows.length ? ' (the first ' + i.skipped_rows.length + '; all are in the results)' : '') }),
            h('thead', {}, h('tr', {}, ['Line', 'Number', 'Reason'].map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', {}, i.skipped_rows.map((s) => h('tr', {}, h('td', { text: s.line }), h('td', { text: s.callee }), h('td', { text: s.reason })))))));
        }
      }
      const open = h('a', { href: '#/campaign/' + c.id, id: 'open-campaign', class: 'button', text: 'Open the campaign' });
      if (c.state === 'paused') {
        const startBtn = h('button', { type: 'button', id: 'start-campaign', text: 'Start calling ' + num(i ? i.accepted : c.total) + ' contacts' });
        const msg = h('p', { class: 'small', role: 'status' });
        startBtn.addEventListener('click', async () => {
          startBtn.disabled = true;
          try {
            await apiJson('/v1/campaigns/' + c.id + '/resume', { method: 'POST' });
            location.hash = '#/campaign/' + c.id;
          } catch (e) {
            msg.textContent = 'Refused: ' + e.message;
            startBtn.disabled = false;
          }
        });
        append(report, [h('p', { text: 'Nothing has been dialled yet. Check the report, then start it.' }), h('div', { class: 'actions' }, startBtn, open), msg]);
      } else {
        append(report, [h('p', { text: 'The campaign is ' + c.state + ' (this service starts a campaign when its file is uploaded).' }), open]);
      }
      report.querySelector('h2').setAttribute('tabindex', '-1');
      report.querySelector('h2').focus();
    }
  }

  document.addEventListener('DOMContentLoaded', boot);
})();
