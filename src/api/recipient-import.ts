/**
 * Turns an NDJSON or CSV body into PostgreSQL COPY text, line by line, validating each recipient.
 * A bad line is recorded with its line number and skipped; the rest still imports. Output comes in
 * ~256 KB batches so the COPY stream (and through it the socket) applies backpressure.
 */
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { parse as parseCsv } from 'csv-parse';
import { HeraldError } from '../errors.js';
import { copyLine, parseNdjsonLine, validateRecipient } from '../domain/recipient-line.js';

export interface ImportReport {
  /** non-empty lines seen (header excluded) */
  total: number;
  accepted: number;
  rejectedCount: number;
  /** the first MAX_REJECTED rejected lines */
  rejected: Array<{ line: number; error: string }>;
}

export const MAX_REJECTED = 1000;
const BATCH_CHARS = 256 * 1024;

export type ImportFormat = 'ndjson' | 'csv';

export function importFormat(contentType: string): ImportFormat {
  const base = contentType.split(';')[0]!.trim();
  if (base === 'text/csv') return 'csv';
  if (base === 'application/x-ndjson' || base === 'application/ndjson' || base === 'application/jsonl' || base === '') return 'ndjson';
  throw new HeraldError('UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/x-ndjson or text/csv', { field: 'content-type' });
}

function reject(report: ImportReport, line: number, error: string): void {
  report.rejectedCount++;
  if (report.rejected.length < MAX_REJECTED) report.rejected.push({ line, error });
}

export async function* ndjsonToCopy(body: Readable, report: ImportReport): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let carry = '';
  let lineNo = 0;
  let out = '';
  const handle = (raw: string): void => {
    lineNo++;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    report.total++;
    const r = parseNdjsonLine(line);
    if (!r.ok) reject(report, lineNo, r.error);
    else {
      report.accepted++;
      out += copyLine(lineNo, r.row);
    }
  };
  for await (const chunk of body as AsyncIterable<Buffer>) {
    const text = carry + decoder.write(chunk);
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      handle(text.slice(start, nl));
      start = nl + 1;
    }
    carry = text.slice(start);
    if (out.length >= BATCH_CHARS) {
      yield out;
      out = '';
    }
  }
  carry += decoder.end();
  if (carry.length > 0) handle(carry);
  if (out.length > 0) yield out;
}

export async function* csvToCopy(body: Readable, report: ImportReport): AsyncGenerator<string> {
  let headerError: HeraldError | null = null;
  const parser = parseCsv({
    bom: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    info: true,
    columns: (header: string[]) => {
      const cols = header.map((h) => h.trim());
      if (!cols.includes('user_id'))
        headerError = HeraldError.invalid([{ field: 'user_id', error: 'CSV header must name a user_id column' }]);
      return cols;
    },
  });
  parser.on('skip', (err: { lines?: number; message: string }) => {
    report.total++;
    reject(report, err.lines ?? 0, `csv: ${err.message}`);
  });
  body.on('error', (err) => parser.destroy(err));
  body.pipe(parser);
  let out = '';
  for await (const item of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
    if (headerError !== null) {
      body.destroy();
      throw headerError;
    }
    const { record, info } = item;
    report.total++;
    let attrs: Record<string, string> | undefined;
    for (const [k, v] of Object.entries(record)) {
      if (k === 'user_id' || k === 'address' || v === '') continue;
      (attrs ??= {})[k] = v;
    }
    const r = validateRecipient(record.user_id, record.address, attrs);
    if (!r.ok) reject(report, info.lines, r.error);
    else {
      report.accepted++;
      out += copyLine(info.lines, r.row);
      if (out.length >= BATCH_CHARS) {
        yield out;
        out = '';
      }
    }
  }
  if (headerError !== null) throw headerError;
  if (out.length > 0) yield out;
}
