// What every view of the dashboard shares: the API key (localStorage), the HTTP API, element building,
// number and time formatting, and the live socket's listeners. Plain browser JavaScript (an ES module).

export const $ = (id) => document.getElementById(id);

export const state = {
  key: null,
  /** campaign id → the latest view or frame merged */
  campaigns: new Map(),
  /** called on a 401: the key was refused */
  onUnauthorized: () => undefined,
};

// A key passed as ?key= (tests, links from a trusted backend) is stored and taken out of the URL.
const params = new URLSearchParams(location.search);
if (params.get('key')) {
  localStorage.setItem('herald.key', params.get('key'));
  history.replaceState(null, '', location.pathname + location.hash);
}
state.key = localStorage.getItem('herald.key');

export function setKey(key) {
  state.key = key;
  if (key === null) localStorage.removeItem('herald.key');
  else localStorage.setItem('herald.key', key);
}

/** An answer of 400 and up: `noRoute` when the server has no such route at all (a route's own 404 is not). */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.noRoute = status === 404 && body !== null && body.error === 'no such route';
  }
}

async function parse(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: text.slice(0, 200) };
  }
}

/** One call of the HTTP API with the key; the parsed JSON body, or an ApiError. */
export async function api(method, path, body) {
  const headers = { authorization: `Bearer ${state.key}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const parsed = r.status === 204 ? null : await parse(await r.text());
  if (r.status === 401) state.onUnauthorized();
  if (!r.ok) throw new ApiError(r.status, parsed);
  return parsed;
}

/**
 * Builds an element: h('button', {type: 'button', onclick}, 'Retry'). Attributes starting with `on` are
 * listeners, `hidden`/`disabled` booleans, `dataset` an object; children are nodes or text (null skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export const fmt = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en'));

export const fmtBytes = (n) => {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
};

/** A date-time the way the page shows it: local, to the second. */
export const fmtTime = (iso) => {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString('en-GB', { hour12: false });
};

/** Progress counts every recipient with an outcome: sent, or withheld (skipped, suppressed, capped). */
export const done = (c) => (c.sent || 0) + (c.skipped || 0) + (c.suppressed || 0) + (c.capped || 0);
export const pct = (c) => (c.total ? Math.min(100, (100 * done(c)) / c.total) : c.status === 'completed' ? 100 : 0);

export const TERMINAL = ['completed', 'cancelled', 'failed'];

/** The polite live region: status messages a screen reader announces without moving focus. */
export function announce(text) {
  const region = $('announce');
  region.textContent = '';
  setTimeout(() => (region.textContent = text), 30);
}

/** Shows an error (or clears it with null) in an element meant for it; a route the server lacks is said plainly. */
export function showError(el, err, what) {
  if (err === null) {
    el.textContent = '';
    el.hidden = true;
    return;
  }
  el.hidden = false;
  el.textContent = err instanceof ApiError && err.noRoute ? `${what} is not available on this server.` : err.message;
}

// The live socket is app.js's; views register here for its frames and ask it for subscriptions.
const listeners = { campaign: new Set(), import: new Set() };
export const socket = {
  send: () => undefined,
  /** import ids someone watches: subscribed again after a reconnect */
  imports: new Set(),
  watchImport(id) {
    this.imports.add(id);
    this.send({ subscribe: `import:${id}` });
  },
  unwatchImport(id) {
    if (this.imports.delete(id)) this.send({ unsubscribe: `import:${id}` });
  },
  onCampaign(fn) {
    listeners.campaign.add(fn);
  },
  onImport(fn) {
    listeners.import.add(fn);
    return () => listeners.import.delete(fn);
  },
  dispatch(frame) {
    for (const fn of frame.import_id !== undefined ? listeners.import : listeners.campaign) fn(frame);
  },
};

/** Audiences this browser knows (created here or opened here, and those of listed campaigns). */
export const audiences = {
  all() {
    try {
      return JSON.parse(localStorage.getItem('herald.audiences') || '[]');
    } catch {
      return [];
    }
  },
  remember(id, name) {
    const list = this.all().filter((a) => a.id !== id);
    const known = this.all().find((a) => a.id === id);
    list.push({ id, name: name || (known && known.name) || null });
    list.sort((a, b) => b.id - a.id);
    localStorage.setItem('herald.audiences', JSON.stringify(list.slice(0, 200)));
  },
};
