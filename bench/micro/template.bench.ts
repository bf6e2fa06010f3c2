/**
 * Template rendering, per message (tinybench). Unit: renders per second of one recipient's title + body
 * (each task renders one message). Method: tinybench, `--time` ms per task (default 500) after warm-up, all
 * tasks in one run; compare ratios, not absolutes. The template reads three attributes, as in
 * `bench:webhook -- --templates`; the paths are: plain outputs (concatenation), a filter (liquidjs renders),
 * `missing: "skip"` with the value present (the static check) and absent (a strict render), and no markup.
 *   npx tsx bench/micro/template.bench.ts [--time 500]
 */
import { Bench } from 'tinybench';
import { cpus } from 'node:os';
import { CampaignTemplates, parseAttrs, type RecipientFacts } from '../../src/domain/template.js';

const i = process.argv.indexOf('--time');
const time = i === -1 ? 500 : Number(process.argv[i + 1]);
const campaign = { id: 42, name: 'Spring', variables: { promo: 'SPRING10' } };
const title = 'Hi {{ recipient.attrs.first_name }}';
const body = '{{ recipient.attrs.first_name }}, your {{ recipient.attrs.plan }} plan in {{ recipient.attrs.city }} is ready.';
const json = '{"first_name":"Ann","plan":"pro","city":"Oslo"}';
const ann: RecipientFacts = { userId: 'user-1', address: 'ann@x.test', attrs: parseAttrs(json) };
const lacking: RecipientFacts = { userId: 'user-2', address: null, attrs: { plan: 'pro', city: 'Oslo' } };
const plain = CampaignTemplates.compile({ title, body }, 'empty', campaign);
const filtered = CampaignTemplates.compile({ title: 'Hi {{ recipient.attrs.first_name | upcase }}', body }, 'empty', campaign);
const skip = CampaignTemplates.compile({ title, body }, 'skip', campaign);
const constant = CampaignTemplates.compile({ title: 'Hi Ann', body: 'Ann, your pro plan in Oslo is ready.' }, 'empty', campaign);

const bench = new Bench({ time });
bench
  .add('no markup (the sources as they are)', () => constant.render(ann))
  .add('3 attributes, plain outputs (concatenation)', () => plain.render(ann))
  .add('3 attributes, plain outputs, attrs parsed from the chunk JSON', () =>
    plain.render({ userId: 'user-1', address: null, attrs: parseAttrs(json) }),
  )
  .add('3 attributes, a filter in the title (liquidjs renders)', () => filtered.render(ann))
  .add('missing "skip", values present (static check)', () => skip.render(ann))
  .add('missing "skip", a value absent (strict render, skipped)', () => skip.render(lacking));
await bench.run();
console.log(
  `template renders per message on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${time} ms per task`,
);
console.table(
  bench.tasks.map((t) => {
    const r = t.result as { throughput?: { mean: number } };
    return { task: t.name, 'renders/s': Math.round(r.throughput?.mean ?? 0).toLocaleString('en-US') };
  }),
);
