/**
 * Draws recipients/s of Herald (per consumer count), its peers and the bare-path ceiling from the
 * e2e results as one SVG of grouped horizontal bars per audience size, populated databases first
 * (bench/results/e2e-<N>-populated.json: the way users run it), then fresh ones (e2e-<N>.json), and
 * the webhook runs against the peers (webhook.json, `bench:webhook --peers`):
 * bench/results/throughput.svg. No plotting library: the chart is a few dozen rectangles.
 *   npm run bench:chart
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

interface E2e {
  at: string;
  results: Array<{ workers: number; recipientsPerSec: number }>;
  ceilings: { barePathRecipientsPerSec?: number };
  peers?: Record<string, { recipientsPerSec: number }>;
}

interface Webhook {
  at: string;
  results: Array<{ latencyMs: number; tracking: boolean; recipientsPerSec: number }>;
  peers?: Array<{ mode: 'stored' | 'buffered'; latencyMs: number; recipientsPerSec: number }>;
}

const files = [1_000_000, 10_000_000]
  .flatMap((n) => [
    { n, populated: true, path: `bench/results/e2e-${n}-populated.json` },
    { n, populated: false, path: `bench/results/e2e-${n}.json` },
  ])
  .filter((f) => existsSync(f.path));
if (files.length === 0) throw new Error('no bench/results/e2e-*.json: run npm run bench:e2e first');

interface Bar {
  label: string;
  value: number;
  color: string;
}
const groups = files.map(({ n, populated, path }) => {
  const r = JSON.parse(readFileSync(path, 'utf8')) as E2e;
  // --rounds repeats each consumer count: its runs are numbered.
  const seen = new Map<number, number>();
  const repeated = new Set(r.results.filter((x, i) => r.results.findIndex((y) => y.workers === x.workers) !== i).map((x) => x.workers));
  const bars: Bar[] = r.results.map((x) => {
    const round = (seen.get(x.workers) ?? 0) + 1;
    seen.set(x.workers, round);
    return {
      label: `Herald, ${x.workers} consumer${x.workers > 1 ? 's' : ''}${repeated.has(x.workers) ? `, round ${round}` : ''}`,
      value: x.recipientsPerSec,
      color: '#2563eb',
    };
  });
  if (r.peers?.bullmq) bars.push({ label: 'BullMQ peer', value: r.peers.bullmq.recipientsPerSec, color: '#f59e0b' });
  if (r.peers?.bullmq_buffered)
    bars.push({ label: 'BullMQ peer, buffering', value: r.peers.bullmq_buffered.recipientsPerSec, color: '#fbbf24' });
  if (r.peers?.naive) bars.push({ label: 'naive PostgreSQL peer', value: r.peers.naive.recipientsPerSec, color: '#dc2626' });
  if (r.ceilings.barePathRecipientsPerSec)
    bars.push({ label: 'bare path (ceiling)', value: r.ceilings.barePathRecipientsPerSec, color: '#9ca3af' });
  const where = populated ? 'a used database (20M earlier recipients, 50M events)' : 'a fresh database';
  return { title: `${n.toLocaleString('en-US')} recipients, null channel, ${where} (run of ${r.at.slice(0, 10)})`, bars };
});
if (existsSync('bench/results/webhook.json')) {
  const w = JSON.parse(readFileSync('bench/results/webhook.json', 'utf8')) as Webhook;
  for (const r of w.results.filter((x) => x.tracking && x.latencyMs > 0)) {
    const peers = (w.peers ?? []).filter((p) => p.latencyMs === r.latencyMs);
    if (peers.length === 0) continue;
    groups.push({
      title: `webhook, receiver answering in ${r.latencyMs} ms, defaults (run of ${w.at.slice(0, 10)})`,
      bars: [
        { label: 'Herald', value: r.recipientsPerSec, color: '#2563eb' },
        ...peers.map((p) => ({
          label: p.mode === 'stored' ? 'BullMQ peer' : 'BullMQ peer, buffering',
          value: p.recipientsPerSec,
          color: p.mode === 'stored' ? '#f59e0b' : '#fbbf24',
        })),
      ],
    });
  }
}

const W = 760;
const labelW = 200;
const barH = 22;
const plotW = W - labelW - 90;
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
let y = 40;
const parts: string[] = [];
parts.push(
  `<text x="12" y="24" font-size="16" font-weight="bold">Recipients per second, start → completed with every event in ClickHouse</text>`,
);
for (const g of groups) {
  parts.push(`<text x="12" y="${y + 14}" font-size="13" font-weight="bold">${esc(g.title)}</text>`);
  y += 24;
  // Each group on its own scale: webhook rates are a tenth of the null channel's.
  const max = Math.max(...g.bars.map((b) => b.value));
  for (const b of g.bars) {
    const w = Math.max(1, Math.round((b.value / max) * plotW));
    parts.push(`<text x="${labelW - 8}" y="${y + 15}" font-size="12" text-anchor="end">${esc(b.label)}</text>`);
    parts.push(`<rect x="${labelW}" y="${y}" width="${w}" height="${barH - 4}" fill="${b.color}"/>`);
    parts.push(`<text x="${labelW + w + 6}" y="${y + 15}" font-size="12">${Math.round(b.value / 1000).toLocaleString('en-US')} k/s</text>`);
    y += barH;
  }
  y += 16;
}
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${parts.join('\n')}
</svg>
`;
writeFileSync('bench/results/throughput.svg', svg);
console.log(`bench/results/throughput.svg: ${groups.length} group(s), ${groups.reduce((n, g) => n + g.bars.length, 0)} bars`);
