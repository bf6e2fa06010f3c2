// Audiences: create one, open one, upload a recipient file into it with the upload's progress (bytes
// sent, from XMLHttpRequest) and then the import job's (rows, from the socket's import frames and
// GET /v1/imports/:id), and its import jobs (GET /v1/audiences/:id/imports).
import { $, announce, api, audiences, fmt, fmtBytes, fmtTime, h, showError, socket, state } from './core.js';

let current = null; // audience id shown
let importsBefore = null;
let upload = null; // {xhr, jobId, poll, off}

export async function showAudiences() {
  showError($('aud-error'), null);
  const draw = (list) =>
    $('aud-list').replaceChildren(
      ...(list.length
        ? list.map((a) =>
            h(
              'li',
              {},
              h('a', { href: `#/a/${a.id}` }, `#${a.id}${a.name ? ` ${a.name}` : ''}`),
              a.imported !== undefined ? h('span', { class: 'muted' }, ` · ${fmt(a.imported)} imported in ${a.imports} import(s)`) : '',
            ),
          )
        : [h('li', { class: 'muted' }, 'None yet: create one above.')]),
    );
  draw(audiences.all());
  try {
    // The server's list (GET /v1/audiences), newest first; it also teaches the form's suggestions.
    const r = await api('GET', '/v1/audiences?limit=100');
    for (const a of [...r.audiences].reverse()) audiences.remember(a.id, a.name);
    draw(r.audiences);
  } catch (err) {
    showError($('aud-error'), err, 'Listing audiences');
  }
}

$('aud-create').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const a = await api('POST', '/v1/audiences', { name: $('aud-name').value.trim() });
    audiences.remember(a.id, a.name);
    $('aud-name').value = '';
    announce(`Audience ${a.id} created.`);
    location.hash = `#/a/${a.id}`;
  } catch (err) {
    showError($('aud-error'), err, 'Creating audiences');
  }
});

$('aud-open').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = Number($('aud-id').value);
  if (id >= 1) location.hash = `#/a/${id}`;
});

/** Entering #/a/:id. */
export function showAudience(id) {
  if (current !== id) {
    $('up-progress').hidden = true;
    $('up-result').replaceChildren();
    showError($('up-error'), null);
  }
  current = id;
  const known = audiences.all().find((a) => a.id === id);
  $('a-title').textContent = `Audience #${id}${known && known.name ? ` ${known.name}` : ''}`;
  $('a-new-campaign').href = `#/new?audience=${id}`;
  loadImports(true);
  api('GET', `/v1/audiences/${id}`).then(
    (a) => {
      if (id !== current) return;
      audiences.remember(a.id, a.name);
      $('a-title').textContent = `Audience #${id}${a.name ? ` ${a.name}` : ''} · ${fmt(a.recipients)} recipients`;
    },
    () => undefined, // an unknown id: the imports list says so
  );
}

async function loadImports(reset) {
  const id = current;
  if (reset) importsBefore = null;
  try {
    const r = await api('GET', `/v1/audiences/${id}/imports?limit=20${importsBefore ? `&before=${importsBefore}` : ''}`);
    if (id !== current) return;
    showError($('im-error'), null);
    if (reset && r.imports.length) audiences.remember(id);
    const rows = r.imports.map((j) =>
      h(
        'tr',
        { dataset: { id: j.id, status: j.status } },
        h('td', {}, j.id),
        h('td', {}, j.status, j.error ? h('span', { class: 'error' }, ` ${j.error}`) : null),
        h('td', {}, fmt(j.total)),
        h('td', {}, fmt(j.imported)),
        h('td', { class: 'wide' }, fmt(j.duplicates)),
        h('td', {}, fmt(j.rejected_count)),
        h('td', { class: 'wide' }, fmtTime(j.started_at)),
      ),
    );
    if (reset) $('im-rows').replaceChildren(...rows);
    else $('im-rows').append(...rows);
    if (reset && rows.length === 0) $('im-rows').append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No imports yet.')));
    importsBefore = r.next_before;
    $('im-more').hidden = r.next_before === null;
  } catch (err) {
    showError($('im-error'), err, 'The imports list');
  }
}
$('im-refresh').addEventListener('click', () => loadImports(true));
$('im-more').addEventListener('click', () => loadImports(false));

function headersFor(file, format) {
  const name = file.name.toLowerCase();
  const gz = name.endsWith('.gz');
  const base = gz ? name.slice(0, -3) : name;
  const csv = format === 'csv' || (format === 'auto' && base.endsWith('.csv'));
  const headers = { 'content-type': csv ? 'text/csv' : 'application/x-ndjson' };
  if (gz) headers['content-encoding'] = 'gzip';
  return headers;
}

/** The import job's counts as the page shows them. */
function showJob(job) {
  const bar = $('up-job-bar');
  const done = job.status === 'completed' || job.status === 'failed';
  if (job.status === 'receiving') bar.removeAttribute('value');
  else {
    bar.max = 1;
    bar.value = done ? 1 : 0.5;
  }
  $('up-job').textContent =
    job.status === 'receiving'
      ? `Import #${job.id}: receiving, ${fmt(job.total)} rows read (${fmt(job.staged)} staged), ${fmtBytes(job.received_bytes || 0)} received`
      : job.status === 'merging'
        ? `Import #${job.id}: merging ${fmt(job.staged)} rows into the audience…`
        : job.status === 'completed'
          ? `Import #${job.id}: completed`
          : `Import #${job.id}: failed${job.error ? `: ${job.error}` : ''}`;
  $('up-progress').dataset.job = job.status;
  if (!done) return;
  const rejected = job.rejected || [];
  $('up-result').replaceChildren(
    h(
      'dl',
      { class: 'facts', id: 'up-counts' },
      h('dt', {}, 'rows'),
      h('dd', { 'data-count': 'total' }, fmt(job.total)),
      h('dt', {}, 'imported'),
      h('dd', { 'data-count': 'imported' }, fmt(job.imported)),
      h('dt', {}, 'duplicates'),
      h('dd', { 'data-count': 'duplicates' }, fmt(job.duplicates)),
      h('dt', {}, 'rejected'),
      h('dd', { 'data-count': 'rejected' }, fmt(job.rejected_count)),
      job.same_as ? [h('dt', {}, 'same as'), h('dd', {}, `import #${job.same_as} (nothing new)`)] : null,
    ),
    rejected.length
      ? h(
          'details',
          { open: true },
          h('summary', {}, `First rejected lines (${fmt(rejected.length)} of ${fmt(job.rejected_count)})`),
          h('ul', { class: 'rejected' }, ...rejected.slice(0, 20).map((r) => h('li', {}, `line ${r.line}: ${r.error}`))),
        )
      : null,
  );
  announce(`Import ${job.id} ${job.status}: ${fmt(job.imported)} imported.`);
  finishUpload();
  loadImports(true);
}

function finishUpload() {
  if (upload === null) return;
  clearInterval(upload.poll);
  if (upload.off) upload.off();
  if (upload.jobId) socket.unwatchImport(upload.jobId);
  upload = null;
  $('up-submit').disabled = false;
  $('up-abort').hidden = true;
}

/** Follows a job after the upload's answer: import frames, and GET /v1/imports/:id in case frames are not coming. */
function follow(jobId) {
  upload.jobId = jobId;
  upload.off = socket.onImport((f) => {
    if (f.import_id === jobId && !f.error) showJob({ ...f, id: f.import_id });
  });
  socket.watchImport(jobId);
  clearInterval(upload.poll);
  upload.poll = setInterval(async () => {
    try {
      showJob(await api('GET', `/v1/imports/${jobId}`));
    } catch {
      // the frames may still come; the next poll tries again
    }
  }, 1000);
}

$('up-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const file = $('up-file').files[0];
  if (!file || upload !== null) return;
  const audienceId = current;
  const xhr = new XMLHttpRequest();
  upload = { xhr, jobId: null, poll: null, off: null };
  showError($('up-error'), null);
  $('up-progress').hidden = false;
  $('up-progress').dataset.job = '';
  $('up-result').replaceChildren();
  $('up-bar').max = file.size || 1;
  $('up-bar').value = 0;
  $('up-bytes').textContent = `Sending ${file.name} (${fmtBytes(file.size)})…`;
  $('up-job').textContent = '';
  $('up-job-bar').removeAttribute('value');
  $('up-submit').disabled = true;
  $('up-abort').hidden = false;
  const started = Date.now();
  let seen = 0;
  xhr.upload.addEventListener('progress', (e) => {
    seen++;
    $('up-bar').value = e.loaded;
    $('up-bar').dataset.events = String(seen);
    const s = (Date.now() - started) / 1000;
    const rate = s > 0 ? e.loaded / s : 0;
    const left = rate > 0 && e.total ? Math.ceil((e.total - e.loaded) / rate) : null;
    $('up-bytes').textContent =
      `Sent ${fmtBytes(e.loaded)} of ${fmtBytes(e.total || file.size)} (${Math.floor((100 * e.loaded) / (e.total || file.size || 1))}%)` +
      (rate > 0 ? `, ${fmtBytes(Math.round(rate))}/s` : '') +
      (left !== null && e.loaded < e.total ? `, about ${left} s left` : '');
  });
  xhr.upload.addEventListener('load', () => {
    $('up-bar').value = $('up-bar').max;
    $('up-bytes').textContent = `Sent ${fmtBytes(file.size)} of ${fmtBytes(file.size)} (100%); waiting for the server…`;
  });
  // While the body streams in, the job is already there: its rows read so far, from the audience's list.
  upload.poll = setInterval(async () => {
    try {
      const r = await api('GET', `/v1/audiences/${audienceId}/imports?limit=1`);
      const j = r.imports[0];
      if (upload && upload.jobId === null && j && Date.parse(j.started_at) >= started - 2000 && j.status === 'receiving') {
        if (!upload.seen) loadImports(true);
        upload.seen = true;
        showJob(j);
      }
    } catch {
      // the answer to the upload says it all in the end
    }
  }, 500);
  xhr.addEventListener('load', () => {
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch {
      body = { error: xhr.responseText.slice(0, 200) };
    }
    if (xhr.status === 401) state.onUnauthorized();
    $('up-progress').dataset.answer = String(xhr.status);
    $('up-bytes').textContent = `Sent ${fmtBytes(file.size)} in ${((Date.now() - started) / 1000).toFixed(1)} s.`;
    if (xhr.status === 200) {
      showJob({ ...body, id: body.import_id });
      return;
    }
    if (xhr.status === 202) {
      showJob({ ...body, id: body.import_id });
      follow(body.import_id);
      return;
    }
    showError($('up-error'), new Error(`Upload refused (${xhr.status}): ${(body && body.error) || 'no answer'}`));
    finishUpload();
    loadImports(true);
  });
  xhr.addEventListener('error', () => {
    showError($('up-error'), new Error('The upload failed: the connection was lost.'));
    finishUpload();
  });
  xhr.addEventListener('abort', () => {
    showError($('up-error'), new Error('The upload was stopped.'));
    finishUpload();
    loadImports(true);
  });
  xhr.open('POST', `/v1/audiences/${audienceId}/recipients`);
  xhr.setRequestHeader('authorization', `Bearer ${state.key}`);
  for (const [k, v] of Object.entries(headersFor(file, $('up-format').value))) xhr.setRequestHeader(k, v);
  xhr.send(file);
});

$('up-abort').addEventListener('click', () => {
  if (upload) upload.xhr.abort();
});
