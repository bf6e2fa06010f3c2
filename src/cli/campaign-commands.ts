/**
 * `herald campaign create|start|pause|resume|cancel|retry-failed|show|list|preview|watch` and
 * `herald recipient USER_ID --campaign ID`: thin calls of the HTTP API, whose answers are printed as
 * text, or as they are with --json. The server validates bodies and answers 400 naming each bad field.
 */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { CliError } from './client.js';
import { collect, contextOf, jsonValue, nonNegative, positiveInt } from './context.js';
import { campaignDetails, campaignList, count, EXIT, previews, recipientStory } from './format.js';
import { watchCampaign } from './watch.js';

type Obj = Record<string, unknown>;

interface CreateFlags {
  file?: string;
  name?: string;
  audience?: number;
  segment?: number;
  filter?: unknown;
  channel?: string;
  webhookUrl?: string;
  tracking?: boolean;
  title?: string;
  body?: string;
  data?: unknown;
  variables?: unknown;
  missing?: string;
  chunkSize?: number;
  scheduleAt?: string;
  rateLimit?: number;
  segmentBy?: string;
  topic?: string;
  priority?: string;
}

/** The create body: `--file`'s JSON, then each flag given over it. */
export function campaignBody(file: Obj, f: CreateFlags): Obj {
  const body: Obj = { ...file };
  const set = (key: string, v: unknown): void => {
    if (v !== undefined) body[key] = v;
  };
  set('name', f.name);
  set('audience_id', f.audience);
  set('segment_id', f.segment);
  set('filter', f.filter);
  set('variables', f.variables);
  set('missing', f.missing);
  set('chunk_size', f.chunkSize);
  set('schedule_at', f.scheduleAt);
  set('rate_limit', f.rateLimit);
  set('segment_by', f.segmentBy);
  set('topic', f.topic);
  set('priority', f.priority);
  if (f.channel !== undefined || f.webhookUrl !== undefined || f.tracking === false) {
    const type = f.channel ?? (f.webhookUrl !== undefined ? 'webhook' : 'null');
    const channel: Obj = { ...(typeof file.channel === 'object' && file.channel !== null ? (file.channel as Obj) : {}), type };
    if (f.webhookUrl !== undefined) channel.url = f.webhookUrl;
    if (f.tracking === false) channel.tracking = false;
    body.channel = channel;
  }
  if (f.title !== undefined || f.body !== undefined || f.data !== undefined) {
    const content: Obj = { ...(typeof file.content === 'object' && file.content !== null ? (file.content as Obj) : {}) };
    if (f.title !== undefined) content.title = f.title;
    if (f.body !== undefined) content.body = f.body;
    if (f.data !== undefined) content.data = f.data;
    body.content = content;
  }
  body.channel ??= { type: 'null' };
  return body;
}

async function readJsonFile(file: string): Promise<Obj> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`--file ${file}: ${(err as Error).message}`, EXIT.usage);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new CliError(`--file ${file}: not JSON (${(err as Error).message})`, EXIT.usage);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CliError(`--file ${file}: must hold a JSON object`, EXIT.usage);
  return v as Obj;
}

const LIFECYCLE: ReadonlyArray<[command: string, description: string]> = [
  ['start', 'start a draft or scheduled campaign'],
  ['pause', 'pause a sending campaign'],
  ['resume', 'resume a paused campaign'],
  ['cancel', 'cancel a campaign: what was not sent is counted as aborted'],
];

export function campaignCommands(program: Command): void {
  const campaign = program.command('campaign').description('campaigns: create, control, inspect, watch');

  campaign
    .command('create')
    .description('create a campaign (a draft, or scheduled with --schedule-at) from flags and/or --file campaign.json; flags win')
    .option('-f, --file <file>', 'a JSON body of POST /v1/campaigns (README); flags override its fields')
    .option('--name <name>', "the campaign's name")
    .option('-a, --audience <id>', 'the audience to send to', positiveInt)
    .option('--segment <id>', "only the audience's recipients this segment selects", positiveInt)
    .option('--filter <json>', 'only the recipients this inline filter selects (README "Segments")', jsonValue)
    .addOption(new Option('--channel <type>', 'the channel (default null)').choices(['null', 'inbox', 'webhook']))
    .option('--webhook-url <url>', "the webhook channel's URL (implies --channel webhook)")
    .option('--no-tracking', 'webhook messages without a tracking_url')
    .option('--title <template>', 'content.title (a Liquid template)')
    .option('--body <template>', 'content.body (a Liquid template)')
    .option('--data <json>', 'content.data: a JSON object whose strings are templates', jsonValue)
    .option('--variables <json>', "the templates' variables: a JSON object", jsonValue)
    .addOption(
      new Option('--missing <mode>', 'a template value the recipient lacks: render empty, or skip the recipient').choices([
        'empty',
        'skip',
      ]),
    )
    .option('--chunk-size <n>', 'recipients per chunk', positiveInt)
    .option('--schedule-at <iso>', 'start at this time (ISO 8601)')
    .option('--rate-limit <n>', 'messages per second', nonNegative)
    .option('--segment-by <attr>', 'an attrs key carried on every event for segment analytics')
    .option('--topic <topic>', 'the topic whose suppression list and frequency cap apply')
    .addOption(new Option('--priority <priority>', "critical bypasses the topic's list and cap").choices(['normal', 'critical']))
    .action(async (flags: CreateFlags, cmd: Command) => {
      const ctx = contextOf(cmd);
      const file = flags.file === undefined ? {} : await readJsonFile(flags.file);
      const c = await ctx.client().call('POST', '/v1/campaigns', campaignBody(file, flags));
      ctx.print(`campaign ${String(c.id)} created: ${String(c.status)}`, c);
    });

  for (const [command, description] of LIFECYCLE) {
    campaign
      .command(command)
      .argument('<id>', 'the campaign', positiveInt)
      .description(description)
      .action(async (id: number, _opts: unknown, cmd: Command) => {
        const ctx = contextOf(cmd);
        const r = await ctx.client().call('POST', `/v1/campaigns/${id}/${command}`);
        ctx.print(`campaign ${id}: ${String(r.status)}`, r);
      });
  }

  campaign
    .command('retry-failed')
    .argument('<id>', 'a completed campaign', positiveInt)
    .description('send again, as a new round, to the recipients whose latest outcome is a failure')
    .action(async (id: number, _opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const r = await ctx.client().call('POST', `/v1/campaigns/${id}/retry-failed`);
      ctx.print(`campaign ${id}: ${String(r.status)}, retrying ${count(r.retrying)} recipients`, r);
    });

  campaign
    .command('show')
    .argument('<id>', 'the campaign', positiveInt)
    .description('a campaign and its counts')
    .action(async (id: number, _opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const c = await ctx.client().call('GET', `/v1/campaigns/${id}`);
      ctx.print(campaignDetails(c), c);
    });

  campaign
    .command('list')
    .description('campaigns, newest first')
    .option('--status <status>', 'only campaigns in this status')
    .option('--limit <n>', 'at most this many (1-500, default 50)', positiveInt)
    .option('--before <id>', 'the page after this campaign id', positiveInt)
    .action(async (opts: { status?: string; limit?: number; before?: number }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const q = new URLSearchParams();
      if (opts.status !== undefined) q.set('status', opts.status);
      if (opts.limit !== undefined) q.set('limit', String(opts.limit));
      if (opts.before !== undefined) q.set('before', String(opts.before));
      const r = await ctx
        .client()
        .call<{ campaigns: Obj[]; next_before: number | null }>('GET', `/v1/campaigns${q.size > 0 ? `?${q}` : ''}`);
      const more = r.next_before === null ? '' : `\nmore: --before ${r.next_before}`;
      ctx.print(campaignList(r.campaigns) + more, r);
    });

  campaign
    .command('preview')
    .argument('<id>', 'the campaign', positiveInt)
    .description('render the messages for some recipients; nothing is sent')
    .option('-u, --user <user_id>', 'a recipient to render for (repeatable)', collect)
    .option('--sample <n>', "the audience's first N recipients (default 10)", positiveInt)
    .action(async (id: number, opts: { user?: string[]; sample?: number }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const body: Obj = {};
      if (opts.user !== undefined) body.user_ids = opts.user;
      if (opts.sample !== undefined) body.sample = opts.sample;
      const r = await ctx.client().call<{ previews: Obj[] }>('POST', `/v1/campaigns/${id}/preview`, body);
      ctx.print(r.previews.length === 0 ? 'no recipients' : previews(r.previews), r);
    });

  campaign
    .command('watch')
    .argument('<id>', 'the campaign', positiveInt)
    .description(
      'a live progress bar until the campaign ends; exit 0 completed, 3 completed with failures, 4 cancelled, 5 failed (--json: one frame a line)',
    )
    .action(async (id: number, _opts: unknown, cmd: Command) => {
      await watchCampaign(contextOf(cmd), id);
    });

  program
    .command('recipient')
    .argument('<user_id>', "the application's user id")
    .requiredOption('-c, --campaign <id>', 'the campaign', positiveInt)
    .description('what happened to one recipient of a campaign: outcome, attempts, error, reads')
    .action(async (userId: string, opts: { campaign: number }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const r = await ctx.client().call('GET', `/v1/campaigns/${opts.campaign}/recipients/${encodeURIComponent(userId)}`);
      ctx.print(recipientStory(r), r);
    });
}
