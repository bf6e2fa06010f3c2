/**
 * `herald audience create NAME` and `herald audience import FILE --audience ID`. An import streams the file
 * as it is on disk (a `.gz` goes as `Content-Encoding: gzip`, decoded by the server), and its progress bar
 * follows the job to its end: the bytes sent while the body goes up, the job's rows as the server counts
 * them, then the merge until the job is completed or failed.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { Option, type Command } from 'commander';
import { CliError, type HeraldClient } from './client.js';
import { contextOf, ending, positiveInt } from './context.js';
import { bytes, count, duration, EXIT, importSummary, rate } from './format.js';
import { createProgress, type Progress } from './progress.js';

type Obj = Record<string, unknown>;

const POLL_MS = 500;

/** `users.csv.gz` → csv, gzip; `users.ndjson` → ndjson, identity. */
export function importFileKind(file: string, format?: string): { format: 'csv' | 'ndjson'; gzip: boolean } {
  const gzip = /\.gz$/i.test(file);
  const base = file.replace(/\.gz$/i, '');
  if (format === 'csv' || format === 'ndjson') return { format, gzip };
  if (/\.csv$/i.test(base)) return { format: 'csv', gzip };
  if (/\.(ndjson|jsonl|json)$/i.test(base)) return { format: 'ndjson', gzip };
  throw new CliError(`${file}: cannot tell CSV from NDJSON by its name; pass --format csv or --format ndjson`, EXIT.usage);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface ImportView {
  sentBytes: number;
  fileBytes: number;
  job: Obj | null;
  startedMs: number;
}

function progressState(v: ImportView): Parameters<Progress['update']>[0] {
  const phase = v.job === null ? 'receiving' : String(v.job.status);
  const rows = Number(v.job?.total ?? 0);
  const elapsedS = Math.max((Date.now() - v.startedMs) / 1000, 0.001);
  const sentRate = rate(v.sentBytes / elapsedS / 1024 / 1024, 'MB');
  const rowRate = rate(rows / elapsedS, 'rows');
  // what is left of the body at the rate so far; none once it is all sent (the merge has no measure)
  const etaS = v.sentBytes >= v.fileBytes || v.sentBytes === 0 ? null : ((v.fileBytes - v.sentBytes) * elapsedS) / v.sentBytes;
  const eta = phase === 'receiving' && v.sentBytes < v.fileBytes ? duration(etaS) : '-';
  return {
    value: v.sentBytes,
    total: v.fileBytes,
    phase,
    payload: { sent: bytes(v.sentBytes), size: bytes(v.fileBytes), rows: count(rows), rowRate, sentRate, phase, left: eta },
    line: `import ${v.job?.id === undefined ? '' : `${String(v.job.id)} `}${phase}: ${bytes(v.sentBytes)}/${bytes(v.fileBytes)}, ${count(rows)} rows | ${sentRate}, ${rowRate} | ETA ${eta}`,
  };
}

async function importFile(
  client: HeraldClient,
  file: string,
  audienceId: number,
  kind: ReturnType<typeof importFileKind>,
  progress: Progress | null,
): Promise<Obj> {
  let fileBytes: number;
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new Error('not a file');
    fileBytes = s.size;
  } catch (err) {
    throw new CliError(`${file}: ${(err as Error).message}`, EXIT.usage);
  }
  // The newest job before ours, so the one that appears while our body goes up is ours.
  const before = await client.call<{ imports: Obj[] }>('GET', `/v1/audiences/${audienceId}/imports?limit=1`);
  const lastId = Number(before.imports[0]?.id ?? 0);
  const view: ImportView = { sentBytes: 0, fileBytes, job: null, startedMs: Date.now() };
  const draw = (): void => progress?.update(progressState(view));

  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      view.sentBytes += chunk.length;
      done(null, chunk);
    },
  });
  const body = createReadStream(file).pipe(counted);
  let uploading = true;
  const watcher = (async () => {
    while (uploading) {
      draw();
      await sleep(POLL_MS);
      if (!uploading || progress === null) continue;
      const list = await client.call<{ imports: Obj[] }>('GET', `/v1/audiences/${audienceId}/imports?limit=5`).catch(() => null);
      const mine = list?.imports.find((j) => Number(j.id) > lastId && j.status === 'receiving');
      if (mine !== undefined && uploading) view.job = mine;
    }
  })();
  let answer: Awaited<ReturnType<HeraldClient['upload']>>;
  try {
    answer = await client.upload(`/v1/audiences/${audienceId}/recipients`, body, {
      'content-type': kind.format === 'csv' ? 'text/csv' : 'application/x-ndjson',
      ...(kind.gzip ? { 'content-encoding': 'gzip' } : {}),
    });
  } finally {
    uploading = false;
    await watcher;
  }
  const id = Number(answer.body.import_id);
  // 200: completed already; 202: merging, followed here to its end.
  for (;;) {
    view.job = await client.call<Obj>('GET', `/v1/imports/${id}`);
    draw();
    if (view.job.status === 'completed' || view.job.status === 'failed') break;
    await sleep(POLL_MS);
  }
  return view.job;
}

export function audienceCommands(program: Command): void {
  const audience = program.command('audience').description('audiences and their recipients');

  audience
    .command('create')
    .argument('<name>', "the audience's name")
    .description('create an audience; prints its id')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const a = await ctx.client().call('POST', '/v1/audiences', { name });
      ctx.print(`audience ${String(a.id)} created: ${String(a.name)}`, a);
    });

  audience
    .command('import')
    .argument('<file>', 'CSV (header user_id,address[,attrs…]) or NDJSON ({"user_id","address"?,"attrs"?} per line); .gz too')
    .description('import recipients from a file, with a progress bar, then imported / duplicates / rejected')
    .requiredOption('-a, --audience <id>', 'the audience to import into', positiveInt)
    .addOption(new Option('--format <format>', 'the file format, when its name does not say').choices(['csv', 'ndjson']))
    .action(async (file: string, opts: { audience: number; format?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const kind = importFileKind(file, opts.format);
      const progress = ctx.json
        ? null
        : await createProgress({
            out: process.stdout,
            format: '{bar} {percentage}% | {sent}/{size} | {rows} rows | {sentRate} {rowRate} | ETA {left} | {phase}',
            plainEveryMs: 1000,
          });
      let job: Obj;
      try {
        job = await importFile(ctx.client(), file, opts.audience, kind, progress);
      } finally {
        progress?.stop();
      }
      ctx.print(importSummary(job), job);
      if (job.status === 'failed') ending.code = EXIT.error;
    });
}
