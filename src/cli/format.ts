/**
 * The command line's human output and exit codes. Pure: API answers in, lines out, so each shape is
 * unit-tested without a server.
 */

/** Exit codes of every command (README "Command line"). */
export const EXIT = {
  ok: 0,
  /** the server answered an error, could not be reached, or an import failed */
  error: 1,
  /** bad flags or arguments */
  usage: 2,
  /** `campaign watch`: the campaign completed, and some recipients' outcome is a failure */
  completedWithFailures: 3,
  /** `campaign watch`: the campaign was cancelled */
  cancelled: 4,
  /** `campaign watch`: the campaign failed */
  failed: 5,
} as const;

export const TERMINAL = new Set(['completed', 'cancelled', 'failed']);

/** The exit code `campaign watch` ends with once the campaign is in a terminal status. */
export function watchExitCode(status: string, failed: number): number {
  if (status === 'completed') return failed > 0 ? EXIT.completedWithFailures : EXIT.ok;
  if (status === 'cancelled') return EXIT.cancelled;
  return EXIT.failed;
}

type Obj = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v ?? 0));

export function count(v: unknown): string {
  return num(v).toLocaleString('en-US');
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** 0s, 42s, 3m05s, 2h07m; `-` when unknown */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '-';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function rate(perS: number, unit: string): string {
  return `${perS >= 100 ? Math.round(perS).toLocaleString('en-US') : perS.toFixed(1)} ${unit}/s`;
}

/** Columns padded to their widest cell; the first row is the header. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

const COUNT_FIELDS = ['total', 'delivered', 'failed', 'skipped', 'suppressed', 'capped', 'aborted', 'pending', 'read', 'unique_readers'];

/** `herald campaign show`: the campaign's fields, then its counts. */
export function campaignDetails(c: Obj): string {
  const channel = c.channel as Obj | undefined;
  const lines = [
    `campaign ${String(c.id)}: ${String(c.name)}`,
    `  status       ${String(c.status)}`,
    `  audience     ${String(c.audience_id)}${c.segment_id !== null && c.segment_id !== undefined ? ` (segment ${String(c.segment_id)})` : ''}`,
  ];
  if (channel !== undefined)
    lines.push(`  channel      ${String(channel.type)}${channel.url !== undefined ? ` ${String(channel.url)}` : ''}`);
  if (c.rate_limit !== null && c.rate_limit !== undefined) lines.push(`  rate limit   ${count(c.rate_limit)}/s`);
  for (const f of ['schedule_at', 'started_at', 'finished_at'] as const)
    if (typeof c[f] === 'string') lines.push(`  ${f.replace('_', ' ').padEnd(12)} ${c[f]}`);
  lines.push(
    '',
    table([
      COUNT_FIELDS.map((f) => f.replace('unique_readers', 'readers')),
      COUNT_FIELDS.map((f) => (f === 'total' && c.total === null ? '-' : count(c[f]))),
    ]),
  );
  if (num(c.retried) > 0) lines.push(`retried ${count(c.retried)}`);
  return lines.join('\n');
}

/** `herald campaign list` */
export function campaignList(list: readonly Obj[]): string {
  if (list.length === 0) return 'no campaigns';
  return table([
    ['id', 'status', 'total', 'delivered', 'failed', 'pending', 'read', 'name'],
    ...list.map((c) => [
      String(c.id),
      String(c.status),
      c.total === null ? '-' : count(c.total),
      count(c.delivered),
      count(c.failed),
      count(c.pending),
      count(c.read),
      String(c.name),
    ]),
  ]);
}

/** `herald campaign preview` */
export function previews(list: readonly Obj[]): string {
  return list
    .map((p) => {
      const who = `${String(p.user_id)}:`;
      if (p.skipped !== undefined) return `${who} skipped (${String(p.skipped)})`;
      if (p.error !== undefined) return `${who} error: ${String(p.error)}`;
      const lines = [
        `${who} ${String(p.title)}`,
        ...String(p.body)
          .split('\n')
          .map((l) => `    ${l}`),
      ];
      if (p.data !== undefined) lines.push(`    data ${JSON.stringify(p.data)}`);
      return lines.join('\n');
    })
    .join('\n');
}

/** How many rejected lines the human summary of an import shows. */
export const SHOWN_REJECTED = 10;

/** `herald audience import`'s summary, from the job (`GET /v1/imports/:id`). */
export function importSummary(job: Obj): string {
  const id = String(job.id ?? job.import_id);
  if (job.status === 'failed') return `import ${id} failed: ${String(job.error)}`;
  const lines = [
    `import ${id} ${String(job.status)}: ${count(job.imported)} imported, ${count(job.duplicates)} duplicates, ${count(job.rejected_count)} rejected (${count(job.total)} lines)`,
  ];
  if (job.same_as !== null && job.same_as !== undefined) lines.push(`same content as import ${String(job.same_as)}: nothing added`);
  const rejected = Array.isArray(job.rejected) ? (job.rejected as Obj[]) : [];
  for (const r of rejected.slice(0, SHOWN_REJECTED)) lines.push(`  line ${String(r.line)}: ${String(r.error)}`);
  const more = num(job.rejected_count) - Math.min(rejected.length, SHOWN_REJECTED);
  if (more > 0) lines.push(`  … and ${count(more)} more rejected lines`);
  return lines.join('\n');
}

/** `herald recipient`: one recipient's story. */
export function recipientStory(r: Obj): string {
  const lines = [`${String(r.user_id)} in campaign ${String(r.campaign_id)}: ${String(r.outcome)}`];
  if (typeof r.error === 'string') lines.push(`  error   ${r.error}`);
  if (typeof r.reason === 'string') lines.push(`  reason  ${r.reason}`);
  const attempts = Array.isArray(r.attempts) ? (r.attempts as Obj[]) : [];
  const reads = Array.isArray(r.reads) ? (r.reads as Obj[]) : [];
  if (attempts.length > 0) {
    lines.push('  attempts');
    for (const a of attempts) lines.push(`    ${String(a.at)}  ${String(a.kind)}${typeof a.error === 'string' ? `  ${a.error}` : ''}`);
  }
  lines.push(
    reads.length === 0
      ? '  reads   none'
      : `  reads   ${reads.length} (first ${String(reads[0]!.at)}${reads.length > 1 ? `, last ${String(reads[reads.length - 1]!.at)}` : ''})`,
  );
  return lines.join('\n');
}

/** A progress frame of `campaign watch` as one plain line (output that is not a terminal). */
export function watchLine(f: Obj): string {
  const total = f.total === null || f.total === undefined ? null : num(f.total);
  const done = num(f.sent) + num(f.skipped) + num(f.suppressed) + num(f.capped) + num(f.aborted);
  const pct = total === null || total === 0 ? '' : ` (${((100 * done) / total).toFixed(1)}%)`;
  return (
    `campaign ${String(f.campaign_id)} ${String(f.status)}: ${count(done)}/${total === null ? '?' : count(total)}${pct}` +
    ` delivered ${count(f.delivered)} failed ${count(f.failed)} read ${count(f.read)}` +
    ` | ${rate(num(f.rate_per_s), 'msg')} | ETA ${duration(f.eta_s as number | null)}`
  );
}

/** The last line of `campaign watch`, from GET /v1/campaigns/:id. */
export function watchSummary(c: Obj): string {
  const withheld = num(c.skipped) + num(c.suppressed) + num(c.capped);
  return (
    `campaign ${String(c.id)} ${String(c.status)}: ${count(c.delivered)} delivered, ${count(c.failed)} failed` +
    `${withheld > 0 ? `, ${count(withheld)} withheld` : ''}${num(c.aborted) > 0 ? `, ${count(c.aborted)} aborted` : ''}` +
    `, ${count(c.read)} read (of ${c.total === null ? '?' : count(c.total)})`
  );
}
