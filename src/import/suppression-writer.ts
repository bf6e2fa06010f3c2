/**
 * Writes suppressions: bulk NDJSON bodies (PUT / DELETE /v1/suppressions) streamed line by line into COPY
 * text with each row's fingerprint, a bad line rejected with its number while the rest is kept; and single
 * unsubscribes. After a change commits, its mark is raised in Redis, so senders reload before their next
 * sub-batch (consent/suppression-index.ts); the answer waits for that.
 */
import type { Readable } from 'node:stream';
import { fingerprint, fingerprintSql } from '../domain/fingerprint.js';
import { parseSuppressionLine, suppressionCopyLine, type SuppressionLine } from '../domain/consent-input.js';
import type { Actor, AuditRecord } from '../domain/audit.js';

/** Each change is recorded in the audit with it (`audit` is read once the body is through). */
export interface SuppressionRecord {
  bulkPut(copyText: AsyncIterable<string | Buffer>, audit: () => AuditRecord): Promise<number>;
  bulkDelete(copyText: AsyncIterable<string | Buffer>, audit: () => AuditRecord): Promise<void>;
  put(s: SuppressionLine, fp: string, audit: AuditRecord): Promise<number>;
}

export interface BulkReport {
  /** non-empty lines */
  total: number;
  accepted: number;
  rejectedCount: number;
  /** the first MAX_REJECTED_SHOWN, in line order */
  rejected: Array<{ line: number; error: string }>;
}

export const MAX_REJECTED_SHOWN = 100;
const BATCH_CHARS = 256 * 1024;

/** NDJSON to the staging table's COPY text, in ~256 KB pieces (the COPY's backpressure reaches the socket). */
export async function* suppressionCopyText(body: Readable, report: BulkReport): AsyncGenerator<string> {
  let lineNo = 0;
  let out = '';
  const handle = (line: string): void => {
    lineNo++;
    if (line.trim() === '') return;
    report.total++;
    const r = parseSuppressionLine(line);
    if (!r.ok) {
      report.rejectedCount++;
      if (report.rejected.length < MAX_REJECTED_SHOWN) report.rejected.push({ line: lineNo, error: r.error });
      return;
    }
    report.accepted++;
    out += suppressionCopyLine(lineNo, r.value, fingerprintSql(fingerprint(r.value.topic, r.value.userId)));
  };
  let carry = '';
  body.setEncoding('utf8');
  for await (const chunk of body as AsyncIterable<string>) {
    const text = carry + chunk;
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
  if (carry !== '') handle(carry);
  if (out.length > 0) yield out;
}

export class SuppressionWriter {
  constructor(
    private readonly record: SuppressionRecord,
    /** raises the change mark senders compare with (stream/redis-gateway.ts) */
    private readonly raiseMark: (mark: number) => Promise<unknown>,
  ) {}

  async bulk(op: 'put' | 'delete', body: Readable, actor: Actor): Promise<BulkReport> {
    const report: BulkReport = { total: 0, accepted: 0, rejectedCount: 0, rejected: [] };
    const text = suppressionCopyText(body, report);
    // read after the COPY, when the counts are final
    const audit = (): AuditRecord => ({
      actor,
      action: op === 'put' ? 'suppressions.put' : 'suppressions.delete',
      detail: { accepted: report.accepted, rejected_count: report.rejectedCount, total: report.total },
    });
    if (op === 'put') await this.raiseMark(await this.record.bulkPut(text, audit));
    else await this.record.bulkDelete(text, audit);
    return report;
  }

  /** One suppression (an unsubscribe); once answered, no sub-batch screened after it sends to that user. */
  async one(s: SuppressionLine, actor: Actor, campaignId: number | null = null): Promise<void> {
    const audit: AuditRecord = {
      actor,
      action: 'suppression.unsubscribe',
      campaignId,
      detail: { user_id: s.userId, topic: s.topic === '' ? null : s.topic },
    };
    await this.raiseMark(await this.record.put(s, fingerprintSql(fingerprint(s.topic, s.userId)), audit));
  }
}
