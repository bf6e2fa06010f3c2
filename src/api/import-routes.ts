/**
 * Recipient imports over HTTP. The request streams its body into an import job and gets its answer
 * within seconds of its last byte, whatever the size: the job's final result (200) when the merge is
 * quick, else 202 with the job to follow at `GET /v1/imports/:id` (src/import/import-jobs.ts).
 */
import { HeraldError } from '../errors.js';
import { importAnswer, importView, type ImportFormat } from '../domain/import-job.js';
import { parseId } from '../domain/campaign-input.js';
import { contentEncoding, type ImportJobs } from '../import/import-jobs.js';
import { MAX_REJECTED } from '../import/recipient-import.js';
import { bodyReadable } from './body-stream.js';
import type { Route } from './routes.js';

export interface ImportApiDeps {
  imports: ImportJobs;
  maxImportBytes: number;
}

export function importFormat(contentType: string): ImportFormat {
  const base = contentType.split(';')[0]!.trim();
  if (base === 'text/csv') return 'csv';
  if (base === 'application/x-ndjson' || base === 'application/ndjson' || base === 'application/jsonl' || base === '') return 'ndjson';
  throw new HeraldError('UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/x-ndjson or text/csv', { field: 'content-type' });
}

function listQuery(query: URLSearchParams): { limit: number; before: number | null } {
  const limitRaw = query.get('limit');
  const beforeRaw = query.get('before');
  const limit = limitRaw === null || limitRaw === '' ? 50 : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500)
    throw HeraldError.invalid([{ field: 'limit', error: 'must be an integer from 1 to 500' }]);
  return { limit, before: beforeRaw === null || beforeRaw === '' ? null : parseId(beforeRaw, 'before') };
}

export function registerImportRoutes(route: Route, deps: ImportApiDeps): void {
  route('post', '/v1/audiences/:id/recipients', async (info, res, state) => {
    const audienceId = parseId(info.params[0], 'id');
    const format = importFormat(info.headers.contentType);
    const encoding = contentEncoding(info.headers.contentEncoding);
    if (info.headers.contentLength !== null && info.headers.contentLength > deps.maxImportBytes) {
      throw new HeraldError('PAYLOAD_TOO_LARGE', `body exceeds ${deps.maxImportBytes} bytes`, {
        field: 'body',
        limit: deps.maxImportBytes,
      });
    }
    const body = bodyReadable(res, state, deps.maxImportBytes);
    const { job, rejected } = await deps.imports.run({ audienceId, format, encoding, body });
    return importAnswer(job, rejected.slice(0, MAX_REJECTED));
  });

  route('get', '/v1/imports/:id', async (info) => {
    const id = parseId(info.params[0], 'id');
    const job = await deps.imports.get(id);
    if (job === null) throw new HeraldError('NOT_FOUND', `import ${id} not found`);
    return { status: 200, body: importView(job) };
  });

  route('get', '/v1/audiences/:id/imports', async (info) => {
    const audienceId = parseId(info.params[0], 'id');
    const q = listQuery(info.query);
    const jobs = await deps.imports.listByAudience(audienceId, q);
    const last = jobs[jobs.length - 1];
    return { status: 200, body: { imports: jobs.map(importView), next_before: jobs.length === q.limit && last ? last.id : null } };
  });
}
