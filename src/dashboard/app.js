// Herald dashboard: plain browser JavaScript, no build step and no CDN. Live data comes only from the
// WebSocket API (GET /v1/ws); the list and the buttons use the HTTP API with the admin key kept in
// localStorage. The socket reconnects with backoff after the server restarts.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { key: null, ws: null, campaigns: new Map(), current: null, series: [], backoff: 500, wanted: new Set(['*']) };

  // A key passed as ?key= (tests, links from a trusted backend) is stored and taken out of the URL.
  const params = new URLSearchParams(location.search);
  if (params.get('key')) {
    localStorage.setItem('herald.key', params.get('key'));
    history.replaceState(null, '', location.pathname + location.hash);
  }
  state.key = localStorage.getItem('herald.key');

  async function api(method, path) {
    const r = await fetch(path, { method, headers: { authorization: `Bearer ${state.key}` } });
    const body = r.status === 204 ? null : await r.json();
    if (r.status === 401) {
      localStorage.removeItem('herald.key');
      state.key = null;
      showLogin('That key was refused.');
    }
    if (!r.ok) throw new Error((body && body.error) || `HTTP ${r.status}`);
    return body;
  }

  function showLogin(error) {
    $('login').hidden = false;
    $('list').hidden = true;
    $('detail').hidden = true;
    $('login-error').textContent = error || '';
  }

  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.key = $('key').value.trim();
    localStorage.setItem('herald.key', state.key);
    $('login').hidden = true;
    start();
  });

  const fmt = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en'));
  // Progress counts every recipient with an outcome: sent, or withheld (skipped, suppressed, capped).
  const done = (c) => (c.sent || 0) + (c.skipped || 0) + (c.suppressed || 0) + (c.capped || 0);
  const pct = (c) => (c.total ? Math.min(100, (100 * done(c)) / c.total) : c.status === 'completed' ? 100 : 0);

  function renderRow(c) {
    let tr = document.querySelector(`tr[data-id="${c.id}"]`);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.id = c.id;
      tr.innerHTML =
        '<td class="id"></td><td class="name"></td><td class="status"></td><td><div class="bar"><div></div></div></td><td class="delivered"></td><td class="failed"></td><td class="read"></td>';
      tr.addEventListener('click', () => (location.hash = `#/c/${c.id}`));
      const rows = $('rows');
      const after = [...rows.children].find((r) => Number(r.dataset.id) < c.id);
      rows.insertBefore(tr, after || null);
    }
    tr.className = `status-${c.status}`;
    tr.querySelector('.id').textContent = c.id;
    tr.querySelector('.name').textContent = c.name || '';
    tr.querySelector('.status').textContent = c.status;
    const bar = tr.querySelector('.bar > div');
    bar.style.width = `${pct(c)}%`;
    tr.dataset.sent = c.sent || 0;
    tr.querySelector('.delivered').textContent = fmt(c.delivered);
    tr.querySelector('.failed').textContent = fmt(c.failed);
    tr.querySelector('.read').textContent = fmt(c.read);
  }

  function renderDetail() {
    const c = state.current && state.campaigns.get(state.current);
    if (!c) return;
    $('d-title').textContent = `#${c.id} ${c.name || ''}`;
    $('d-status').textContent = c.status;
    $('detail').className = `status-${c.status}`;
    $('d-bar').style.width = `${pct(c)}%`;
    $('d-bar').parentElement.dataset.sent = c.sent || 0;
    $('d-rate').textContent =
      c.status === 'sending' ? `${fmt(Math.round(c.rate_per_s || 0))} msg/s${c.eta_s != null ? `, ${c.eta_s} s left` : ''}` : '';
    for (const k of ['delivered', 'failed', 'skipped', 'suppressed', 'capped', 'pending', 'aborted', 'read'])
      $(`d-${k}`).textContent = fmt(c[k]);
    $('d-readers').textContent = fmt(c.unique_readers);
    $('b-pause').disabled = c.status !== 'sending';
    $('b-resume').disabled = c.status !== 'paused';
    $('b-cancel').disabled = !['draft', 'scheduled', 'sending', 'paused'].includes(c.status);
    chart(
      $('c-rate'),
      state.series.map((p) => p.rate),
      '#2f81f7',
    );
    chart(
      $('c-read'),
      state.series.map((p) => p.readRate),
      '#3fb950',
      1,
    );
  }

  function chart(canvas, values, color, fixedMax) {
    const g = canvas.getContext('2d');
    const w = canvas.width;
    const h = canvas.height;
    g.clearRect(0, 0, w, h);
    if (values.length < 2) return;
    const max = fixedMax || Math.max(1, ...values);
    g.strokeStyle = '#e3e6ea';
    g.beginPath();
    g.moveTo(0, h - 0.5);
    g.lineTo(w, h - 0.5);
    g.stroke();
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    values.forEach((v, i) => {
      const x = (i / (values.length - 1)) * (w - 4) + 2;
      const y = h - 4 - (v / max) * (h - 12);
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
    g.fillStyle = '#57606a';
    g.font = '11px system-ui';
    g.fillText(
      fixedMax
        ? `${Math.round(100 * values[values.length - 1])} %`
        : `${Math.round(values[values.length - 1])} /s (max ${Math.round(max)})`,
      6,
      14,
    );
  }

  function onFrame(f) {
    if (f.error) {
      if (f.campaign_id) console.warn('herald:', f.error);
      return;
    }
    const known = state.campaigns.get(f.campaign_id);
    const c = Object.assign(known || { id: f.campaign_id }, f, { id: f.campaign_id });
    state.campaigns.set(c.id, c);
    if (!known) loadList();
    renderRow(c);
    if (state.current === c.id) {
      state.series.push({ rate: f.rate_per_s || 0, readRate: f.delivered ? f.unique_readers / f.delivered : 0 });
      if (state.series.length > 300) state.series.shift();
      renderDetail();
    }
  }

  async function connect() {
    const conn = $('conn');
    try {
      const { token } = await api('POST', '/v1/ws/token');
      const ws = new WebSocket(
        `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws?token=${encodeURIComponent(token)}`,
      );
      state.ws = ws;
      ws.onopen = () => {
        state.backoff = 500;
        conn.textContent = 'live';
        conn.className = 'conn live';
        for (const id of state.wanted) ws.send(JSON.stringify({ subscribe: String(id) }));
      };
      ws.onmessage = (ev) => onFrame(JSON.parse(ev.data));
      ws.onclose = () => retry();
    } catch (err) {
      retry(err);
    }
  }

  function retry() {
    const conn = $('conn');
    conn.textContent = 'reconnecting…';
    conn.className = 'conn down';
    state.ws = null;
    setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 5000);
  }

  async function loadList() {
    try {
      const { campaigns } = await api('GET', '/v1/campaigns?limit=50');
      for (const c of campaigns) {
        const known = state.campaigns.get(c.id);
        const merged = Object.assign({}, c, known && (known.sent || 0) > (c.sent || 0) ? known : {}, { name: c.name });
        state.campaigns.set(c.id, merged);
        renderRow(merged);
      }
      renderDetail();
    } catch (err) {
      console.warn('herald: list failed', err);
    }
  }

  for (const b of document.querySelectorAll('.actions button')) {
    b.addEventListener('click', async () => {
      $('d-error').textContent = '';
      try {
        const r = await api('POST', `/v1/campaigns/${state.current}/${b.dataset.cmd}`);
        const c = state.campaigns.get(state.current);
        if (c) {
          c.status = r.status;
          renderDetail();
          renderRow(c);
        }
      } catch (err) {
        $('d-error').textContent = err.message;
      }
    });
  }

  function route() {
    const m = /^#\/c\/(\d+)$/.exec(location.hash);
    state.current = m ? Number(m[1]) : null;
    state.series = [];
    $('list').hidden = state.current !== null;
    $('detail').hidden = state.current === null;
    if (state.current !== null) {
      if (!state.campaigns.has(state.current)) api('GET', `/v1/campaigns/${state.current}`).then(onFrameFromView, () => undefined);
      renderDetail();
    }
  }

  function onFrameFromView(v) {
    state.campaigns.set(v.id, Object.assign(state.campaigns.get(v.id) || {}, v));
    renderRow(state.campaigns.get(v.id));
    renderDetail();
  }

  window.addEventListener('hashchange', route);

  function start() {
    $('list').hidden = false;
    route();
    loadList();
    connect();
  }

  if (!state.key) showLogin();
  else start();
})();
