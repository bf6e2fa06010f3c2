import { describe, expect, it } from 'vitest';
import { ClusterSchema, clusterMigrations } from '../../src/migrate/cluster-schema.js';
import { loadMigrations, splitStatements } from '../../src/migrate/migrate.js';

const OPTS = { cluster: 'herald_cluster', database: 'herald' };

async function both(): Promise<{ single: string[]; cluster: string[] }> {
  const files = (await loadMigrations('clickhouse')).map((m) => ({ name: m.name, statements: splitStatements(m.sql) }));
  const cluster = clusterMigrations(files, new ClusterSchema(OPTS));
  expect(cluster.map((f) => f.name)).toEqual(files.map((f) => f.name));
  return { single: files.flatMap((f) => f.statements), cluster: cluster.flatMap((f) => f.statements) };
}

describe('the cluster form of the ClickHouse schema', () => {
  it('gives every single-server table a Replicated local table and a Distributed table of its name', async () => {
    const { single, cluster } = await both();
    const tables = single.flatMap((s) => /^CREATE TABLE IF NOT EXISTS (\w+)\s*(\([\s\S]*\))\s*ENGINE = (\w+)/.exec(s) ?? []);
    expect(tables.length).toBeGreaterThan(0);
    for (const s of single.filter((x) => x.startsWith('CREATE TABLE'))) {
      const [, name, columns, engine] = /^CREATE TABLE IF NOT EXISTS (\w+)\s*(\([\s\S]*\))\s*ENGINE = (\w+)/.exec(s)!;
      const local = cluster.find((c) => c.startsWith(`CREATE TABLE IF NOT EXISTS herald.${name}_local ON CLUSTER herald_cluster `));
      expect(local, name).toBeDefined();
      // same columns, the Replicated form of the same engine, a ZooKeeper path of its own per shard
      expect(local).toContain(columns);
      expect(local).toContain(`ENGINE = Replicated${engine}('/clickhouse/tables/{shard}/herald/${name}_local', '{replica}'`);
      const key = columns!.includes('campaign_id UInt64') ? 'campaign_id' : 'rand()';
      expect(cluster).toContain(
        `CREATE TABLE IF NOT EXISTS herald.${name} ON CLUSTER herald_cluster AS herald.${name}_local ` +
          `ENGINE = Distributed(herald_cluster, herald, ${name}_local, ${key})`,
      );
    }
    // every table with a campaign is sharded by it (a campaign lives on one shard)
    expect(cluster.filter((c) => c.includes('ENGINE = Distributed') && !c.endsWith('campaign_id)'))).toEqual([]);
  });

  it('runs every view on the shards, from and into the local tables', async () => {
    const { single, cluster } = await both();
    const views = single.filter((s) => s.startsWith('CREATE MATERIALIZED VIEW'));
    expect(views.length).toBeGreaterThanOrEqual(7);
    for (const v of views) {
      const [, name, target] = /^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS/.exec(v)!;
      const c = cluster.find((x) => x.startsWith(`CREATE MATERIALIZED VIEW IF NOT EXISTS herald.${name} ON CLUSTER herald_cluster `));
      expect(c, name).toBeDefined();
      expect(c).toContain(`TO herald.${target}_local AS SELECT`);
      expect(c).toContain('FROM herald.message_events_local');
      expect(c).not.toMatch(/FROM (?!herald\.\w+_local\b)/);
    }
  });

  it('alters the local tables ON CLUSTER and re-creates the Distributed one over them', async () => {
    const { single, cluster } = await both();
    for (const a of single.filter((s) => s.startsWith('ALTER TABLE'))) {
      const [, name, change] = /^ALTER TABLE (\w+) ([\s\S]+)$/.exec(a)!;
      const i = cluster.indexOf(`ALTER TABLE herald.${name}_local ON CLUSTER herald_cluster ${change}`);
      expect(i, a).toBeGreaterThan(-1);
      expect(cluster[i + 1]).toBe(`DROP TABLE IF EXISTS herald.${name} ON CLUSTER herald_cluster`);
      expect(cluster[i + 2]).toMatch(
        new RegExp(`^CREATE TABLE IF NOT EXISTS herald\\.${name} ON CLUSTER herald_cluster AS herald\\.${name}_local ENGINE = Distributed`),
      );
    }
    // nothing but the backfill INSERT … SELECT (through the Distributed tables) runs on one server only
    expect(cluster.filter((c) => !c.includes(' ON CLUSTER herald_cluster')).map((c) => c.slice(0, 30))).toEqual(
      single.filter((s) => s.startsWith('INSERT')).map((c) => c.slice(0, 30)),
    );
  });

  it('refuses statements it has no cluster form for, and tables no migration created', () => {
    const s = new ClusterSchema(OPTS);
    expect(() => s.statement('CREATE VIEW v AS SELECT 1')).toThrow(/no cluster form/);
    expect(() => s.statement('ALTER TABLE nowhere ADD COLUMN x UInt8')).toThrow(/not created by an earlier migration/);
    expect(() => s.statement("CREATE TABLE IF NOT EXISTS r (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a")).toThrow(
      /already Replicated/,
    );
    expect(() => new ClusterSchema({ cluster: 'bad name', database: 'herald' })).toThrow(/identifier/);
  });
});
