// The new-campaign form: audience or segment or filter, channel, templates, schedule and rate limit. A live
// preview renders the form as it is typed (POST /v1/previews, nothing saved). The button creates the
// campaign as a draft (or scheduled) and previews it for chosen recipients; fields changed after that make
// the next press a new draft, and the one it replaces is cancelled.
import { $, ApiError, announce, api, audiences, h } from './core.js';
import { previewPanel, renderPreviews } from './preview.js';

const form = $('create');
let draft = null; // {id, body}: the draft the preview shows
const preview = previewPanel($('cp-controls'), $('cp-results'), 'cp');

const radio = (name) => form.querySelector(`input[name="${name}"]:checked`).value;

function syncChoices() {
  $('segment-field').hidden = radio('target') !== 'segment';
  $('filter-field').hidden = radio('target') !== 'filter';
  $('webhook-field').hidden = radio('channel') !== 'webhook';
  $('f-url').required = radio('channel') === 'webhook';
}
for (const r of form.querySelectorAll('input[type="radio"]')) r.addEventListener('change', syncChoices);

/** The request body from the fields; a field the browser can tell is wrong throws {field, error}. */
function body() {
  const json = (id, field) => {
    const text = $(id).value.trim();
    if (text === '') return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw { field, error: 'is not valid JSON' };
    }
  };
  const b = {
    name: $('f-name').value.trim(),
    audience_id: Number($('f-audience').value),
    channel: { type: radio('channel') },
    content: { title: $('f-title').value, body: $('f-body').value },
    missing: $('f-missing').value,
  };
  if (b.channel.type === 'webhook') b.channel.url = $('f-url').value.trim();
  const data = json('f-data', 'content.data');
  if (data !== undefined) b.content.data = data;
  const variables = json('f-variables', 'variables');
  if (variables !== undefined) b.variables = variables;
  if (radio('target') === 'segment') b.segment_id = Number($('f-segment').value);
  if (radio('target') === 'filter') b.filter = json('f-filter', 'filter') ?? null;
  if ($('f-schedule').value) b.schedule_at = new Date($('f-schedule').value).toISOString();
  if ($('f-rate').value) b.rate_limit = Number($('f-rate').value);
  return b;
}

function clearErrors() {
  $('create-errors').hidden = true;
  $('create-errors').replaceChildren();
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid');
    el.removeAttribute('aria-describedby');
  }
  for (const el of form.querySelectorAll('.field-error')) el.remove();
}

/** Marks each field named in `errors` ({field, error}) and lists them all at the top; focus goes to the first. */
function showErrors(errors) {
  const box = $('create-errors');
  box.hidden = false;
  box.replaceChildren(
    h('p', {}, 'The campaign was not created:'),
    h('ul', {}, ...errors.map((e) => h('li', {}, `${e.field}: ${e.error}`))),
  );
  let first = null;
  for (const e of errors) {
    const el =
      form.querySelector(`[data-field="${e.field}"]`) ||
      form.querySelector(`[data-field="${e.field.split('.')[0]}"]`) ||
      (e.field.startsWith('content') ? $('f-title') : null);
    if (!el) continue;
    const id = `${el.id}-error`;
    if (!document.getElementById(id)) el.after(h('p', { class: 'field-error', id }, e.error));
    el.setAttribute('aria-invalid', 'true');
    el.setAttribute('aria-describedby', id);
    first = first || el;
  }
  (first || box).focus();
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  clearErrors();
  let b;
  try {
    b = body();
  } catch (e) {
    showErrors([e]);
    return;
  }
  const missing = [];
  if (!b.name) missing.push({ field: 'name', error: 'is required' });
  if (!(b.audience_id >= 1)) missing.push({ field: 'audience_id', error: 'is required (a positive id)' });
  if (b.channel.type === 'webhook' && !b.channel.url) missing.push({ field: 'channel.url', error: 'is required for a webhook' });
  if (!b.content.title) missing.push({ field: 'content.title', error: 'is required' });
  if (!b.content.body) missing.push({ field: 'content.body', error: 'is required' });
  if (b.segment_id !== undefined && !(b.segment_id >= 1)) missing.push({ field: 'segment_id', error: 'is required (a positive id)' });
  if (missing.length) {
    showErrors(missing);
    return;
  }
  const status = $('create-status');
  const same = draft !== null && JSON.stringify(draft.body) === JSON.stringify(b);
  try {
    if (!same) {
      status.textContent = 'Creating…';
      const created = await api('POST', '/v1/campaigns', b);
      const replaced = draft;
      draft = { id: created.id, body: b, status: created.status };
      audiences.remember(b.audience_id);
      if (replaced !== null && ['draft', 'scheduled'].includes(replaced.status))
        await api('POST', `/v1/campaigns/${replaced.id}/cancel`).catch(() => undefined);
      $('cp-note').textContent =
        `${created.status === 'scheduled' ? 'Scheduled' : 'Draft'} campaign #${created.id} created.` +
        (replaced ? ` It replaces #${replaced.id}, now cancelled.` : '') +
        ' Change a field and press the button again for a new draft; nothing is sent until you start it.';
      $('cp-open').href = `#/c/${created.id}`;
      $('cp-start').hidden = created.status !== 'draft';
    }
    status.textContent = '';
    $('f-submit').textContent = 'Preview again';
    $('create-preview').hidden = false;
    await preview.run(draft.id);
    announce(`Campaign ${draft.id} ${same ? 'previewed' : 'created as a draft'}.`);
    $('cp-title').focus();
  } catch (err) {
    status.textContent = '';
    if (err instanceof ApiError && err.status === 400 && err.body) {
      showErrors(err.body.fields || [{ field: err.body.field || 'body', error: err.message.replace(/^[^:]+: /, '') }]);
    } else showErrors([{ field: 'request', error: err.message }]);
  }
});

// Editing after a preview: the button says the next press makes a new draft.
form.addEventListener('input', () => {
  if (draft !== null) $('f-submit').textContent = 'Save as a new draft and preview';
  scheduleLive();
});
form.addEventListener('change', scheduleLive);

// The live preview: POST /v1/previews renders the form as it stands (nothing saved) for the first three
// recipients the campaign would reach, half a second after the last keystroke. Only the latest answer is
// shown, so a slow earlier one never overwrites it.
let liveTimer = null;
let liveSeq = 0;
function scheduleLive() {
  clearTimeout(liveTimer);
  liveTimer = setTimeout(runLive, 500);
}
async function runLive() {
  const status = $('lp-status');
  let b;
  try {
    b = body();
  } catch (e) {
    status.textContent = `${e.field}: ${e.error}`;
    return;
  }
  if (!(b.audience_id >= 1) || !b.content.title || !b.content.body) {
    status.textContent = 'Fill in the audience, the title and the body.';
    $('lp-results').replaceChildren();
    return;
  }
  delete b.schedule_at;
  delete b.rate_limit;
  if (b.channel.type === 'webhook' && !b.channel.url) b.channel = { type: 'null' };
  const seq = ++liveSeq;
  status.textContent = 'Rendering…';
  try {
    const { previews } = await api('POST', '/v1/previews', { ...b, name: b.name || 'preview', sample: 3 });
    if (seq !== liveSeq) return;
    status.textContent = `Rendered ${new Date().toLocaleTimeString('en-GB')}.`;
    renderPreviews($('lp-results'), previews);
  } catch (err) {
    if (seq !== liveSeq) return;
    const field = err instanceof ApiError && err.body ? err.body.field : null;
    status.textContent = field ? `${field}: ${err.message.replace(/^[^:]+: /, '')}` : `Preview failed: ${err.message}`;
    $('lp-results').replaceChildren();
  }
}

$('cp-start').addEventListener('click', async () => {
  if (draft === null) return;
  try {
    await api('POST', `/v1/campaigns/${draft.id}/start`);
    const id = draft.id;
    resetForm();
    location.hash = `#/c/${id}`;
  } catch (err) {
    $('cp-note').textContent = `Start failed: ${err.message}`;
  }
});

function resetForm() {
  draft = null;
  form.reset();
  clearErrors();
  syncChoices();
  $('create-preview').hidden = true;
  $('cp-results').replaceChildren();
  $('lp-results').replaceChildren();
  $('lp-status').textContent = 'Fill in the audience, the title and the body.';
  $('f-submit').textContent = 'Create draft and preview';
}

/** Entering #/new (`?audience=` fills the audience). */
export function showCreate(query) {
  const list = $('known-audiences');
  const suggest = (all) =>
    list.replaceChildren(...all.map((a) => h('option', { value: a.id }, a.name ? `${a.id} · ${a.name}` : String(a.id))));
  suggest(audiences.all());
  api('GET', '/v1/audiences?limit=100').then(
    (r) => suggest(r.audiences),
    () => undefined, // the field still takes any id typed in
  );
  if (query.get('audience')) $('f-audience').value = query.get('audience');
  syncChoices();
}

// The segment's name and size, once its id is typed.
$('f-segment').addEventListener('change', async () => {
  const info = $('segment-info');
  const id = Number($('f-segment').value);
  info.textContent = '';
  if (!(id >= 1)) return;
  try {
    const [seg, count] = await Promise.all([api('GET', `/v1/segments/${id}`), api('GET', `/v1/segments/${id}/count`)]);
    info.textContent = `“${seg.name}” on audience ${seg.audience_id}: ${count.count.toLocaleString('en')} recipients now.`;
    if (!$('f-audience').value) $('f-audience').value = seg.audience_id;
  } catch (err) {
    info.textContent = err.message;
  }
});
