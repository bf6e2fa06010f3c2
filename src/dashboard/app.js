// Herald dashboard: plain browser JavaScript (ES modules), no build step and no CDN. Live data comes only
// from the WebSocket API (GET /v1/ws); everything else uses the HTTP API with the key kept in
// localStorage. The socket reconnects with backoff after the server restarts. This file boots the page,
// keeps the campaign list, and routes between the views:
//   #/            campaigns          #/new[?audience=]  the new-campaign form (create.js)
//   #/c/:id       one campaign (campaign.js)
//   #/audiences   audiences          #/a/:id            one audience: upload, imports (audiences.js)
import { $, api, audiences, fmt, h, pct, setKey, socket, state } from './core.js';
import { leaveCampaign, onCampaignFrame, showCampaign } from './campaign.js';
import { showCreate } from './create.js';
import { showAudience, showAudiences } from './audiences.js';

const VIEWS = ['login', 'list', 'new', 'detail', 'audiences', 'audience'];
const conn = { ws: null, backoff: 500, started: false };

function showOnly(view) {
  for (const v of VIEWS) $(v).hidden = v !== view;
  for (const [id, views] of [
    ['nav-campaigns', ['list', 'detail']],
    ['nav-new', ['new']],
    ['nav-audiences', ['audiences', 'audience']],
  ]) {
    if (views.includes(view)) $(id).setAttribute('aria-current', 'page');
    else $(id).removeAttribute('aria-current');
  }
}

function showLogin(error) {
  showOnly('login');
  $('login-error').textContent = error || '';
  $('key').focus();
}
state.onUnauthorized = () => {
  setKey(null);
  showLogin('That key was refused.');
};

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  setKey($('key').value.trim());
  start();
});

function renderRow(c) {
  let tr = document.querySelector(`tr[data-id="${c.id}"]`);
  if (!tr) {
    tr = h(
      'tr',
      { dataset: { id: c.id } },
      h('td', { class: 'id' }),
      h('td', { class: 'name' }, h('a', { href: `#/c/${c.id}` })),
      h('td', { class: 'status' }),
      h('td', {}, h('div', { class: 'bar' }, h('div'))),
      h('td', { class: 'delivered wide' }),
      h('td', { class: 'failed wide' }),
      h('td', { class: 'read wide' }),
    );
    // The name is the link (keyboard, screen readers); a click anywhere on the row opens it too.
    tr.addEventListener('click', (ev) => {
      if (!(ev.target instanceof HTMLAnchorElement)) location.hash = `#/c/${c.id}`;
    });
    const rows = $('rows');
    const after = [...rows.children].find((r) => Number(r.dataset.id) < c.id);
    rows.insertBefore(tr, after || null);
    $('list-empty').hidden = true;
  }
  tr.className = `status-${c.status}`;
  tr.querySelector('.id').textContent = c.id;
  tr.querySelector('.name a').textContent = c.name || `campaign ${c.id}`;
  tr.querySelector('.status').textContent = c.status;
  tr.querySelector('.bar > div').style.width = `${pct(c)}%`;
  tr.dataset.sent = c.sent || 0;
  tr.querySelector('.delivered').textContent = fmt(c.delivered);
  tr.querySelector('.failed').textContent = fmt(c.failed);
  tr.querySelector('.read').textContent = fmt(c.read);
}

socket.onCampaign((f) => {
  if (f.error) {
    if (f.campaign_id) console.warn('herald:', f.error);
    return;
  }
  const known = state.campaigns.get(f.campaign_id);
  const prev = known ? { ...known } : null;
  const c = Object.assign(known || { id: f.campaign_id }, f, { id: f.campaign_id });
  state.campaigns.set(c.id, c);
  if (!known) loadList();
  renderRow(c);
  onCampaignFrame(prev, c, f);
});

async function connect() {
  const el = $('conn');
  try {
    const { token } = await api('POST', '/v1/ws/token');
    const ws = new WebSocket(
      `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws?token=${encodeURIComponent(token)}`,
    );
    conn.ws = ws;
    ws.onopen = () => {
      conn.backoff = 500;
      el.textContent = 'live';
      el.className = 'conn live';
      socket.send = (msg) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(msg));
      socket.send({ subscribe: '*' });
      for (const id of socket.imports) socket.send({ subscribe: `import:${id}` });
    };
    ws.onmessage = (ev) => socket.dispatch(JSON.parse(ev.data));
    ws.onclose = () => retry();
  } catch {
    retry();
  }
}

function retry() {
  const el = $('conn');
  el.textContent = 'reconnecting…';
  el.className = 'conn down';
  conn.ws = null;
  socket.send = () => undefined;
  // Signed out: the next key's start() connects again.
  if (state.key === null) {
    conn.started = false;
    return;
  }
  setTimeout(connect, conn.backoff);
  conn.backoff = Math.min(conn.backoff * 2, 5000);
}

async function loadList() {
  try {
    const { campaigns } = await api('GET', '/v1/campaigns?limit=50');
    for (const c of campaigns) {
      const known = state.campaigns.get(c.id);
      const merged = Object.assign({}, c, known && (known.sent || 0) > (c.sent || 0) ? known : {}, { name: c.name });
      state.campaigns.set(c.id, merged);
      if (c.audience_id && !audiences.all().some((a) => a.id === c.audience_id)) audiences.remember(c.audience_id);
      renderRow(merged);
    }
    $('list-empty').hidden = campaigns.length > 0 || $('rows').children.length > 0;
  } catch (err) {
    console.warn('herald: list failed', err);
  }
}

/** Moves focus to the view's heading on navigation (not on the first load), so keyboard users start there. */
function focusHeading(id, focus) {
  if (focus) $(id).focus({ preventScroll: false });
}

let routed = false;
function route() {
  if (state.key === null) return;
  const focus = routed;
  routed = true;
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const q = new URLSearchParams(query || '');
  let m;
  if ((m = /^\/c\/(\d+)$/.exec(path))) {
    showOnly('detail');
    showCampaign(Number(m[1]));
    focusHeading('d-title', focus);
  } else if (path === '/new') {
    showOnly('new');
    showCreate(q);
    focusHeading('new-title', focus);
  } else if (path === '/audiences') {
    showOnly('audiences');
    showAudiences();
    focusHeading('aud-title', focus);
  } else if ((m = /^\/a\/(\d+)$/.exec(path))) {
    showOnly('audience');
    showAudience(Number(m[1]));
    focusHeading('a-title', focus);
  } else {
    showOnly('list');
    focusHeading('list-title', focus);
  }
  if ($('detail').hidden) leaveCampaign();
}

window.addEventListener('hashchange', route);

function start() {
  route();
  loadList();
  if (!conn.started) {
    conn.started = true;
    connect();
  }
}

if (!state.key) showLogin();
else start();
