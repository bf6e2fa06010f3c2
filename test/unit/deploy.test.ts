import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createMetrics } from '../../src/metrics/herald-metrics.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');
const yamlOf = (file: string): any => parse(read(file), { merge: true });

/** Every series name the registry exports (a histogram's _bucket, _sum and _count too). */
function exportedNames(): Set<string> {
  const metrics = createMetrics({ retentionMs: 60_000, collectTimeoutMs: 100 });
  metrics.close();
  const names = new Set<string>();
  for (const m of metrics.registry.getMetricsAsArray()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
    if (String(m.type) === 'summary') for (const s of ['_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

/** The herald_* series a PromQL expression reads. */
function seriesIn(expr: string): string[] {
  return [...expr.matchAll(/\bherald_[a-z0-9_]+/g)].map((m) => m[0]);
}

describe('deploy/', () => {
  const names = exportedNames();

  it('knows Herald’s series (the check below can tell a missing name)', () => {
    expect(names.has('herald_messages_total')).toBe(true);
    expect(names.has('herald_chunk_duration_seconds_bucket')).toBe(true);
    expect(names.has('herald_process_resident_memory_bytes')).toBe(true);
    expect(names.has('herald_no_such_series')).toBe(false);
  });

  it('alert rules parse, and every expression reads only series the registry exports', () => {
    const doc = yamlOf('deploy/prometheus/alerts.yml');
    const rules = doc.groups.flatMap((g: any) => g.rules) as Array<{ alert: string; expr: string; for?: string }>;
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['HeraldCampaignNoProgress', 'HeraldCampaignErrorRatioHigh', 'HeraldSinkBacklogGrowing']),
    );
    for (const r of rules) {
      expect(typeof r.expr, r.alert).toBe('string');
      const series = seriesIn(r.expr);
      expect(series.length, r.alert).toBeGreaterThan(0);
      for (const s of series) expect(names.has(s), `${r.alert}: ${s}`).toBe(true);
    }
  });

  it('the scrape config loads the alert rules and scrapes /metrics', () => {
    const doc = yamlOf('deploy/prometheus/prometheus.yml');
    expect(doc.rule_files).toEqual(['/etc/prometheus/alerts.yml']);
    expect(doc.scrape_configs[0]).toMatchObject({ job_name: 'herald', metrics_path: '/metrics' });
  });

  it('the dashboard parses, its panels read exported series, and it uses the provisioned datasource', () => {
    const dash = JSON.parse(read('deploy/grafana/dashboards/herald.json'));
    const datasource = yamlOf('deploy/grafana/provisioning/datasources/prometheus.yml').datasources[0];
    const titles = dash.panels.map((p: any) => p.title as string);
    for (const t of [
      'Throughput by outcome',
      'Error ratio',
      'Chunk latency',
      'Stream lag and pending',
      'Sink backlog',
      'WebSocket clients',
    ])
      expect(titles).toContain(t);
    for (const p of dash.panels) {
      expect(p.datasource.uid, p.title).toBe(datasource.uid);
      for (const t of p.targets) for (const s of seriesIn(t.expr)) expect(names.has(s), `${p.title}: ${s}`).toBe(true);
    }
    expect(new Set(dash.panels.map((p: any) => p.id)).size).toBe(dash.panels.length);
  });

  it('docker-compose.yml runs Prometheus and Grafana under the profile metrics, with files that exist', () => {
    const compose = yamlOf('docker-compose.yml');
    for (const name of ['prometheus', 'grafana']) {
      const svc = compose.services[name];
      expect(svc.profiles, name).toEqual(['metrics']);
      for (const v of svc.volumes as string[]) {
        const host = v.split(':')[0]!;
        if (host.startsWith('./')) expect(existsSync(path.join(ROOT, host)), `${name}: ${host}`).toBe(true);
      }
    }
    // The default stack stays as it was: no profile on the others.
    for (const name of ['redis', 'postgres', 'clickhouse', 'herald']) expect(compose.services[name].profiles).toBeUndefined();
    expect(yamlOf('deploy/grafana/provisioning/dashboards/herald.yml').providers[0].options.path).toBe('/var/lib/grafana/dashboards');
  });

  it('docker-compose.yml has a cluster profile: one API process, three workers, Redis Cluster, two ClickHouse shards with Keeper, Prometheus', () => {
    const compose = yamlOf('docker-compose.yml');
    const inCluster = Object.entries(compose.services as Record<string, any>).filter(([, svc]) => svc.profiles?.includes('cluster'));
    const names = inCluster.map(([n]) => n).sort();
    expect(names).toEqual(
      [
        'clickhouse-1',
        'clickhouse-2',
        'clickhouse-keeper',
        'herald-api',
        'herald-worker',
        'prometheus-cluster',
        'redis-cluster-init',
        'redis-node-1',
        'redis-node-2',
        'redis-node-3',
      ].sort(),
    );
    const api = compose.services['herald-api'];
    const worker = compose.services['herald-worker'];
    expect(api.environment.HERALD_ROLE).toBe('api');
    expect(worker.environment.HERALD_ROLE).toBe('worker');
    expect(worker.command).toEqual(['bin/herald', 'worker']);
    expect(worker.deploy.replicas).toBe(3);
    for (const svc of [api, worker]) {
      expect(svc.environment.REDIS_CLUSTER_NODES.split(',')).toEqual(['redis-node-1:6379', 'redis-node-2:6379', 'redis-node-3:6379']);
      expect(svc.environment.HERALD_CLICKHOUSE_CLUSTER).toBe('herald_cluster');
      // never the default stack's database: its herald would dispatch the same campaigns on another Redis
      expect(new URL(svc.environment.DATABASE_URL).pathname).toBe('/herald_cluster');
    }
    for (const [name, svc] of inCluster) {
      for (const v of (svc.volumes ?? []) as string[]) {
        const host = v.split(':')[0]!;
        if (host.startsWith('./')) expect(existsSync(path.join(ROOT, host)), `${name}: ${host}`).toBe(true);
      }
    }
    // The ClickHouse cluster the workers name is the one the nodes' config defines, with a shard per node.
    const xml = readFileSync(path.join(ROOT, 'deploy/clickhouse/cluster.xml'), 'utf8');
    expect(xml).toContain('<herald_cluster>');
    expect(xml.match(/<shard>/g)).toHaveLength(2);
    for (const n of [1, 2])
      expect(readFileSync(path.join(ROOT, `deploy/clickhouse/macros-${n}.xml`), 'utf8')).toContain(`<shard>0${n}</shard>`);
    expect(yamlOf('deploy/prometheus/prometheus-cluster.yml').scrape_configs[0].dns_sd_configs[0].names).toEqual(['herald-worker']);
  });
});
