/**
 * Recipient imports over HTTP. The request streams its body into an import job and gets its answer
 * within seconds of its last byte, whatever the size: the job's final result (200) when the merge is
 * quick, else 202 with the job to follow at `GET /v1/imports/:id` (src/import/import-jobs.ts).
 */
import { HeraldError } from '../errors.js';
import { importAnswer, importView, type ImportFormat } from '../domain/import-job.js';
import { parseId } from '../domain/campaign-input.js';
import type { ContentEncoding, ImportJobs } from '../import/import-jobs.js';
import type { Route } from './route.js';
import { beforeParam, ID_PARAM, limitParam, RECIPIENT_LINES } from './schemas.js';

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

export function contentEncoding(header: string): ContentEncoding {
  const v = header.trim().toLowerCase();
  if (v === '' || v === 'identity') return 'identity';
  if (v === 'gzip' || v === 'x-gzip') return 'gzip';
  throw new HeraldError('UNSUPPORTED_MEDIA_TYPE', 'content-encoding must be gzip or absent', { field: 'content-encoding' });
}

function listQuery(query: URLSearchParams): { limit: number; before: number | null } {
  const limitRaw = query.get('limit');
  const beforeRaw = query.get('before');
  const limit = limitRaw === null || limitRaw === '' ? 50 : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500)
    throw HeraldError.invalid([{ field: 'limit', error: 'must be an integer from 1 to 500' }]);
  return { limit, before: beforeRaw === null || beforeRaw === '' ? null : parseId(beforeRaw, 'before') };
}

const AUDIENCE_PARAM = { ...ID_PARAM, description: 'the audience' };

export function importRoutes(deps: ImportApiDeps): Route[] {
  return [
    {
      name: 'importRecipients',
      method: 'post',
      path: '/v1/audiences/:id/recipients',
      auth: 'audience',
      summary: 'Import recipients into an audience, streamed as an import job',
      params: [AUDIENCE_PARAM],
      body: { contentTypes: ['application/x-ndjson', 'text/csv'], schema: RECIPIENT_LINES, description: 'one recipient a line' },
      responses: {
        200: '{import_id, status: "completed", imported, duplicates, rejected, rejected_count, total, same_as}: the merge finished quickly',
        202: '{import_id, status: "merging", staged, rejected, rejected_count, total}: follow it at GET /v1/imports/:id',
        415: 'an unsupported content-type or content-encoding',
      },
      handler: async (req) => {
        const audienceId = parseId(req.params[0], 'id');
        const format = importFormat(req.headers.contentType);
        const encoding = contentEncoding(req.headers.contentEncoding);
        const body = req.stream(deps.maxImportBytes);
        // At most MAX_REJECTED lines (import/recipient-import.ts), in line order.
        const { job, rejected } = await deps.imports.run({ audienceId, format, encoding, body, actor: req.actor });
        return importAnswer(job, rejected);
      },
    },
    {
      name: 'getImport',
      method: 'get',
      path: '/v1/imports/:id',
      auth: 'read',
      summary: 'An import job; while receiving, its counts advance every second',
      params: [{ ...ID_PARAM, description: 'the import job' }],
      responses: { 200: 'the import job', 404: 'no such import' },
      handler: async (req) => {
        const id = parseId(req.params[0], 'id');
        const job = await deps.imports.get(id);
        if (job === null) throw new HeraldError('NOT_FOUND', `import ${id} not found`);
        return { status: 200, body: importView(job) };
      },
    },
    {
      name: 'listAudienceImports',
      method: 'get',
      path: '/v1/audiences/:id/imports',
      auth: 'read',
      summary: "An audience's import jobs, newest first",
      params: [AUDIENCE_PARAM],
      query: [limitParam(50, 500), beforeParam('import')],
      responses: { 200: '{imports: [import job], next_before}', 400: 'a bad query parameter' },
      handler: async (req) => {
        const audienceId = parseId(req.params[0], 'id');
        const q = listQuery(req.query);
        const jobs = await deps.imports.listByAudience(audienceId, q);
        const last = jobs[jobs.length - 1];
        return { status: 200, body: { imports: jobs.map(importView), next_before: jobs.length === q.limit && last ? last.id : null } };
      },
    },
  ];
}
