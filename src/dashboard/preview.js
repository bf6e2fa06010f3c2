// The preview of a campaign's templates for real recipients (POST /v1/campaigns/:id/preview): the first N
// of its audience or the user ids typed in, each rendered by the server's Liquid; nothing is sent.
import { api, h } from './core.js';

/** Builds the controls into `controls` and renders into `results`; returns {run(campaignId)}. */
export function previewPanel(controls, results, prefix) {
  let campaignId = null;
  const sample = h('input', { id: `${prefix}-sample`, type: 'number', min: 1, max: 100, value: 3, inputmode: 'numeric' });
  const users = h('input', { id: `${prefix}-users`, autocomplete: 'off', placeholder: 'u1, u2' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const form = h(
    'form',
    { class: 'inline-form', onsubmit: (ev) => (ev.preventDefault(), run()) },
    h('label', { for: sample.id }, 'Sample recipients'),
    sample,
    h('label', { for: users.id }, 'or user ids (comma-separated)'),
    users,
    h('button', { type: 'submit', id: `${prefix}-run` }, 'Preview'),
  );
  controls.replaceChildren(form, error);

  async function run(id) {
    if (id !== undefined) campaignId = id;
    if (campaignId === null) return;
    const ids = users.value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const body = ids.length ? { user_ids: ids } : { sample: Math.min(100, Math.max(1, Number(sample.value) || 3)) };
    error.hidden = true;
    results.setAttribute('aria-busy', 'true');
    try {
      const { previews } = await api('POST', `/v1/campaigns/${campaignId}/preview`, body);
      renderPreviews(results, previews);
    } catch (err) {
      error.hidden = false;
      error.textContent = `Preview failed: ${err.message}`;
    } finally {
      results.removeAttribute('aria-busy');
    }
  }
  return {
    run,
    /** the campaign the Preview button renders, without rendering now */
    set(id) {
      campaignId = id;
    },
  };
}

/** Renders preview cards ({user_id, title, body, data?} | {user_id, skipped} | {user_id, error}) into `results`. */
export function renderPreviews(results, previews) {
  results.replaceChildren(
    previews.length === 0 ? h('p', { class: 'muted' }, 'The audience (or its segment) has no recipients yet.') : '',
    ...previews.map((p) =>
      h(
        'article',
        { class: 'preview-card', dataset: { user: p.user_id } },
        h('h4', {}, p.user_id),
        p.skipped !== undefined
          ? h('p', { class: 'muted' }, `skipped: ${p.skipped}`)
          : p.error !== undefined
            ? h('p', { class: 'error' }, `error: ${p.error}`)
            : [
                h('p', { class: 'pv-title' }, h('strong', {}, p.title)),
                h('pre', { class: 'pv-body' }, p.body),
                p.data !== undefined ? h('pre', { class: 'pv-data' }, JSON.stringify(p.data, null, 2)) : null,
              ],
      ),
    ),
  );
}
