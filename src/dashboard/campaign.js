// One campaign's page: counters and the lifecycle buttons, the rate limit, the charts (live from the
// socket while sending, the history from GET /v1/campaigns/:id/stats otherwise), the preview, the
// failures with their retry, one recipient's story and the audit trail.
import { $, TERMINAL, announce, api, fmt, fmtTime, h, pct, showError, state } from './core.js';
import { barDomain, drawChart } from './charts.js';
import { previewPanel } from './preview.js';

let current = null; // campaign id shown
let live = []; // [{t, rate, readRate}] from frames while this page is open
let history = null; // the /stats answer, or null
let historyTimer = null;
let failuresAfter = null;
let auditBefore = null;
const preview = previewPanel($('pv-controls'), $('pv-results'), 'pv');

const LIVE_MAX = 600;

/** Leaving the campaign's page: its frames no longer draw anything. */
export function leaveCampaign() {
  current = null;
  clearTimeout(historyTimer);
  clearTimeout(failuresTimer);
}

/** Entering #/c/:id. */
export function showCampaign(id) {
  current = id;
  live = [];
  history = null;
  clearTimeout(historyTimer);
  clearTimeout(failuresTimer);
  $('d-error').textContent = '';
  $('rate-status').textContent = '';
  $('pv-results').replaceChildren();
  $('rc-result').replaceChildren();
  showError($('rc-error'), null);
  $('fl-status').textContent = '';
  const c = state.campaigns.get(id);
  render();
  api('GET', `/v1/campaigns/${id}`).then(
    (v) => {
      if (current !== id) return;
      const known = state.campaigns.get(id);
      // A frame newer than this answer keeps its counts.
      state.campaigns.set(id, Object.assign({}, v, known && (known.sent || 0) > (v.sent || 0) ? known : {}, { status: v.status }));
      $('d-rate-input').value = v.rate_limit ?? '';
      render();
      if (v.status !== 'sending') loadHistory(id);
      // A draft's page previews at once; a sent campaign's on request.
      if (v.status === 'draft' || v.status === 'scheduled') preview.run(id);
      else preview.set(id);
      loadFailures(true);
    },
    (err) => {
      $('d-title').textContent = `Campaign #${id}`;
      $('d-error').textContent = err.message;
    },
  );
  if (c && c.rate_limit !== undefined) $('d-rate-input').value = c.rate_limit ?? '';
  loadAudit(true);
}

/**
 * A change of a campaign: `prev` as it was, `c` as it is now, `frame` the socket's frame that changed it
 * (app.js sends every frame here after updating the list), or null for an answer to a button.
 */
export function onCampaignFrame(prev, c, frame = null) {
  if (c.id !== current) return;
  if (frame !== null && frame.at) {
    live.push({
      t: Date.parse(frame.at),
      rate: frame.rate_per_s || 0,
      readRate: frame.delivered ? frame.unique_readers / frame.delivered : 0,
    });
    if (live.length > LIVE_MAX) live.shift();
  }
  const was = prev && prev.status;
  if (was !== c.status) {
    announce(`Campaign ${c.id} is ${c.status}.`);
    if (TERMINAL.includes(c.status) || c.status === 'paused') loadAudit(true);
    // Frames carry counts, not times: the finished time and the rest come from the campaign itself.
    if (TERMINAL.includes(c.status))
      api('GET', `/v1/campaigns/${c.id}`).then(
        (v) => {
          const known = state.campaigns.get(v.id);
          if (known) Object.assign(known, { finished_at: v.finished_at, started_at: v.started_at });
          render();
        },
        () => undefined,
      );
    if (c.status === 'completed') {
      loadFailures(true);
      // The history takes the events' last flush into ClickHouse: read it a moment later.
      scheduleHistory(c.id, 1500);
    }
  }
  render();
}

function scheduleHistory(id, ms, tries = 0) {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => loadHistory(id, tries), ms);
}

async function loadHistory(id, tries = 0) {
  try {
    const minute = await api('GET', `/v1/campaigns/${id}/stats`);
    const stats = minute.series.length > 720 ? await api('GET', `/v1/campaigns/${id}/stats?bucket=hour`) : minute;
    stats.bucket = stats === minute ? 'minute' : 'hour';
    if (current !== id) return;
    history = stats;
    const c = state.campaigns.get(id);
    // A finished campaign whose last events are still on their way: read again shortly.
    const behind = stats.totals.delivered > stats.series.reduce((n, p) => n + p.delivered, 0);
    if (c && TERMINAL.includes(c.status) && behind && tries < 5) scheduleHistory(id, 1000 * (tries + 1), tries + 1);
    render();
  } catch (err) {
    if (current === id) $('chart-mode').textContent = `(history unavailable: ${err.message})`;
  }
}

function render() {
  if (current === null) return;
  const c = state.campaigns.get(current);
  if (!c) {
    $('d-title').textContent = `Campaign #${current}`;
    return;
  }
  $('d-title').textContent = `#${c.id} ${c.name || ''}`;
  $('d-status').textContent = c.status;
  $('detail').className = `status-${c.status}`;
  const p = pct(c);
  $('d-bar').style.width = `${p}%`;
  $('d-progress').setAttribute('aria-valuenow', String(Math.round(p)));
  $('d-bar').parentElement.dataset.sent = c.sent || 0;
  $('d-rate').textContent =
    c.status === 'sending' ? `· ${fmt(Math.round(c.rate_per_s || 0))} msg/s${c.eta_s != null ? `, ${c.eta_s} s left` : ''}` : '';
  const meta = [];
  if (c.total != null) meta.push(`${fmt(c.total)} recipients`);
  if (c.audience_id) meta.push(`audience ${c.audience_id}`);
  if (c.segment_id) meta.push(`segment ${c.segment_id}`);
  if (c.channel) meta.push(`${c.channel.type} channel${c.channel.url ? ` → ${c.channel.url}` : ''}`);
  if (c.schedule_at) meta.push(`scheduled ${fmtTime(c.schedule_at)}`);
  if (c.started_at) meta.push(`started ${fmtTime(c.started_at)}`);
  if (c.finished_at) meta.push(`finished ${fmtTime(c.finished_at)}`);
  $('d-meta').textContent = meta.join(' · ');
  for (const k of ['delivered', 'failed', 'skipped', 'suppressed', 'capped', 'pending', 'aborted', 'read'])
    $(`d-${k}`).textContent = fmt(c[k]);
  $('d-readers').textContent = fmt(c.unique_readers);
  $('b-start').disabled = !['draft', 'scheduled'].includes(c.status);
  $('b-pause').disabled = c.status !== 'sending';
  $('b-resume').disabled = c.status !== 'paused';
  $('b-cancel').disabled = !['draft', 'scheduled', 'sending', 'paused'].includes(c.status);
  $('fl-retry').disabled = !(c.status === 'completed' && c.failed > 0);
  // The rate limit changes until the campaign ends (PATCH answers 409 after).
  for (const el of $('rate-form').querySelectorAll('input, button')) el.disabled = TERMINAL.includes(c.status);
  renderCharts(c);
}

function renderCharts(c) {
  const useLive = c.status === 'sending' || (live.length >= 2 && !TERMINAL.includes(c.status)) || (history === null && live.length >= 2);
  if (useLive) {
    $('chart-mode').textContent = '(live)';
    $('c-rate-title').textContent = 'Throughput (messages/s, live)';
    $('c-read-title').textContent = 'Read rate (unique readers / delivered, live)';
    const points = live.filter((p) => Number.isFinite(p.t));
    drawChart($('c-rate'), {
      points: points.map((p) => ({ t: p.t, v: p.rate })),
      yFormat: (v) => fmt(Math.round(v)),
      yTitle: 'msg/s',
      empty: 'waiting for the first frames…',
      color: '#2f81f7',
      label: 'throughput',
    });
    drawChart($('c-read'), {
      points: points.map((p) => ({ t: p.t, v: p.readRate })),
      yMax: 1,
      yFormat: (v) => `${Math.round(v * 100)}%`,
      yTitle: 'read',
      empty: 'waiting for the first frames…',
      color: '#3fb950',
      label: 'read rate',
    });
    $('ttr').textContent = '';
    return;
  }
  const stats = history;
  const bucket = stats && stats.bucket === 'hour' ? 3600000 : 60000;
  const unit = bucket === 3600000 ? 'hour' : 'minute';
  $('chart-mode').textContent = stats ? `(from /stats, per ${unit})` : '(loading…)';
  $('c-rate-title').textContent = `Throughput (delivered per ${unit})`;
  $('c-read-title').textContent = 'Read rate (reads / delivered, cumulative)';
  const series = stats ? filled(stats.series, bucket) : [];
  let delivered = 0;
  let reads = 0;
  const cumulative = series.map((p) => {
    delivered += p.delivered;
    reads += p.read;
    return { t: p.t + bucket, v: delivered === 0 ? 0 : Math.min(1, reads / delivered) };
  });
  if (cumulative.length)
    cumulative.unshift({ t: series[0].t, v: series[0].delivered ? Math.min(1, series[0].read / series[0].delivered) : 0 });
  // Both charts on one time axis: the bars' span.
  const domain = barDomain(
    series.map((p) => ({ t: p.t })),
    bucket,
  );
  const none = c.status === 'draft' || c.status === 'scheduled' ? 'not started yet' : 'no events recorded';
  drawChart($('c-rate'), {
    points: series.map((p) => ({ t: p.t, v: p.delivered })),
    kind: 'bars',
    bucketMs: bucket,
    domain,
    yFormat: (v) => fmt(v),
    yTitle: `per ${unit}`,
    empty: stats ? none : 'loading…',
    color: '#2f81f7',
    label: `delivered per ${unit}`,
  });
  drawChart($('c-read'), {
    points: cumulative,
    domain,
    yMax: 1,
    yFormat: (v) => `${Math.round(v * 100)}%`,
    yTitle: 'read',
    empty: stats ? none : 'loading…',
    color: '#3fb950',
    label: 'read rate',
  });
  const q = stats && stats.time_to_read;
  $('ttr').textContent =
    stats && q && q.p50 !== null
      ? `Read rate ${Math.round(stats.read_rate * 1000) / 10}% · time to read: median ${q.p50} s, p90 ${q.p90} s, p99 ${q.p99} s`
      : stats
        ? `Read rate ${Math.round(stats.read_rate * 1000) / 10}%`
        : '';
}

/** The series with a zero for every bucket without events between the first and the last. */
function filled(series, bucket) {
  const out = [];
  const pts = series.map((p) => ({ t: Date.parse(p.t), delivered: p.delivered, read: p.read })).filter((p) => Number.isFinite(p.t));
  if (pts.length > 2000) return pts;
  for (let i = 0; i < pts.length; i++) {
    out.push(pts[i]);
    const next = pts[i + 1];
    if (next) for (let t = pts[i].t + bucket; t < next.t; t += bucket) out.push({ t, delivered: 0, read: 0 });
  }
  return out;
}

window.addEventListener('resize', () => {
  if (current !== null && !$('detail').hidden) render();
});

// The lifecycle buttons.
for (const b of $('d-actions').querySelectorAll('button[data-cmd]')) {
  b.addEventListener('click', async () => {
    $('d-error').textContent = '';
    const id = current;
    try {
      const r = await api('POST', `/v1/campaigns/${id}/${b.dataset.cmd}`);
      const c = state.campaigns.get(id);
      if (c) {
        const prev = { ...c };
        c.status = r.status;
        onCampaignFrame(prev, c);
      }
      loadAudit(true);
    } catch (err) {
      $('d-error').textContent = err.message;
    }
  });
}

$('rate-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const raw = $('d-rate-input').value.trim();
  try {
    const v = await api('PATCH', `/v1/campaigns/${current}`, { rate_limit: raw === '' ? null : Number(raw) });
    $('rate-status').textContent = v.rate_limit === null ? 'No rate limit now.' : `Rate limit now ${fmt(v.rate_limit)} msg/s.`;
    loadAudit(true);
  } catch (err) {
    $('rate-status').textContent = err.message;
  }
});

// Failures, a page at a time, and the retry round.
let failuresTimer = null;
async function loadFailures(reset, tries = 0) {
  const id = current;
  if (reset) failuresAfter = null;
  clearTimeout(failuresTimer);
  try {
    const q = `limit=50${failuresAfter ? `&after=${encodeURIComponent(failuresAfter)}` : ''}`;
    const r = await api('GET', `/v1/campaigns/${id}/failures?${q}`);
    if (id !== current) return;
    showError($('fl-error'), null);
    const rows = r.failures.map((f) =>
      h(
        'tr',
        { dataset: { user: f.user_id } },
        h(
          'td',
          {},
          h('button', { type: 'button', class: 'link', title: 'look this recipient up', onclick: () => lookUp(f.user_id) }, f.user_id),
        ),
        h('td', {}, f.error || ''),
        h('td', {}, fmt(f.attempts)),
      ),
    );
    if (reset) $('fl-rows').replaceChildren(...rows);
    else $('fl-rows').append(...rows);
    if (reset && rows.length === 0) $('fl-rows').append(h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'No failures.')));
    failuresAfter = r.next_after;
    $('fl-more').hidden = r.next_after === null;
    // Just finished: the list may be read before the last outcomes reach ClickHouse; read it again until it agrees with the count.
    const c = state.campaigns.get(id);
    if (reset && c && c.status === 'completed' && rows.length !== Math.min(50, c.failed || 0) && tries < 8)
      failuresTimer = setTimeout(() => loadFailures(true, tries + 1), 750);
  } catch (err) {
    showError($('fl-error'), err, 'The failures list');
  }
}
$('fl-more').addEventListener('click', () => loadFailures(false));
$('fl-refresh').addEventListener('click', () => loadFailures(true));
$('fl-retry').addEventListener('click', async () => {
  const id = current;
  try {
    const r = await api('POST', `/v1/campaigns/${id}/retry-failed`);
    $('fl-status').textContent = r.retrying > 0 ? `Retrying ${fmt(r.retrying)} recipients.` : 'Nothing to retry.';
    const c = state.campaigns.get(id);
    if (c && r.status) {
      const prev = { ...c };
      c.status = r.status;
      live = [];
      history = null;
      onCampaignFrame(prev, c);
    }
    loadAudit(true);
  } catch (err) {
    $('fl-status').textContent = err.message;
  }
});

// One recipient: GET /v1/campaigns/:id/recipients/:user_id.
function lookUp(userId) {
  $('rc-user').value = userId;
  $('rc-form').requestSubmit();
  $('rc-user').focus();
}
$('rc-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = $('rc-user').value.trim();
  if (!user) return;
  const out = $('rc-result');
  out.replaceChildren();
  try {
    const r = await api('GET', `/v1/campaigns/${current}/recipients/${encodeURIComponent(user)}`);
    showError($('rc-error'), null);
    out.replaceChildren(
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'user'),
        h('dd', {}, r.user_id),
        h('dt', {}, 'outcome'),
        h('dd', { class: 'rc-outcome' }, r.outcome ?? 'none yet'),
        r.error ? [h('dt', {}, 'error'), h('dd', {}, r.error)] : null,
        r.reason ? [h('dt', {}, 'reason'), h('dd', {}, r.reason)] : null,
        h('dt', {}, 'reads'),
        h('dd', {}, (r.reads || []).length ? r.reads.map((x) => fmtTime(x.at)).join(', ') : 'none'),
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          {},
          h('caption', {}, 'Attempts'),
          h(
            'thead',
            {},
            h('tr', {}, h('th', { scope: 'col' }, 'time'), h('th', { scope: 'col' }, 'outcome'), h('th', { scope: 'col' }, 'error')),
          ),
          h(
            'tbody',
            {},
            (r.attempts || []).length
              ? r.attempts.map((a) => h('tr', {}, h('td', {}, fmtTime(a.at)), h('td', {}, a.kind), h('td', {}, a.error || '')))
              : h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'No attempts yet.')),
          ),
        ),
      ),
    );
  } catch (err) {
    showError($('rc-error'), err, 'Recipient lookup');
  }
});

// The audit trail: GET /v1/audit?campaign_id=&limit=&before=.
async function loadAudit(reset) {
  const id = current;
  if (reset) auditBefore = null;
  try {
    const r = await api('GET', `/v1/audit?campaign_id=${id}&limit=20${auditBefore ? `&before=${encodeURIComponent(auditBefore)}` : ''}`);
    if (id !== current) return;
    showError($('au-error'), null);
    const rows = r.items.map((a) =>
      h(
        'tr',
        { dataset: { action: a.action } },
        h('td', {}, fmtTime(a.at)),
        h('td', {}, a.action),
        h('td', {}, a.status_before || a.status_after ? `${a.status_before ?? '–'} → ${a.status_after ?? '–'}` : ''),
        h('td', {}, a.key_name || (a.key_id != null ? `key ${a.key_id}` : '–')),
        h('td', { class: 'wide mono' }, a.request_id || ''),
        h('td', { class: 'wide mono' }, a.detail == null ? '' : typeof a.detail === 'string' ? a.detail : JSON.stringify(a.detail)),
      ),
    );
    if (reset) $('au-rows').replaceChildren(...rows);
    else $('au-rows').append(...rows);
    if (reset && rows.length === 0) $('au-rows').append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'Nothing recorded yet.')));
    auditBefore = r.next_before;
    $('au-more').hidden = r.next_before === null || r.next_before === undefined;
  } catch (err) {
    if (id !== current) return;
    $('au-rows').replaceChildren();
    $('au-more').hidden = true;
    showError($('au-error'), err, 'The audit trail');
  }
}
$('au-refresh').addEventListener('click', () => loadAudit(true));
$('au-more').addEventListener('click', () => loadAudit(false));
