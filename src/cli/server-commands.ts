/**
 * The commands that run Herald itself: `serve`, `worker`, `migrate`, `services`, `config`. The server's
 * code is imported when one of them runs, so the client commands start without loading it.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Argument, type Command } from 'commander';
import type { Config } from '../config.js';
import type { StartOptions } from '../main.js';
import { contextOf, ending } from './context.js';

async function runServer(opts: StartOptions): Promise<void> {
  const [{ loadConfig }, { startHerald }] = await Promise.all([import('../config.js'), import('../main.js')]);
  const cfg: Readonly<Config> = loadConfig();
  const herald = await startHerald(cfg, opts);
  ending.running = true;
  const shutdown = (signal: string): void => {
    herald.log.info({ signal, graceMs: cfg.shutdownGraceMs }, 'shutting down');
    // Chunks not finished by then stay pending in their stream and are reclaimed by another process.
    setTimeout(() => {
      herald.log.error('shutdown grace period over; exiting with work in hand');
      process.exit(1);
    }, cfg.shutdownGraceMs).unref();
    herald.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

export function serverCommands(program: Command): void {
  program
    .command('serve', { isDefault: true })
    .description('migrate, then run the HTTP API, the WebSocket API and the dispatcher (the default command)')
    .action(() => runServer({}));

  program
    .command('worker')
    .description('migrate, then run the dispatcher only: no API, /healthz on HERALD_PORT (no HERALD_API_KEYS needed)')
    .action(() => runServer({ role: 'worker' }));

  program
    .command('migrate')
    .description('apply the PostgreSQL and ClickHouse migrations')
    .action(async (_opts: unknown, cmd: Command) => {
      const [{ loadConfig }, { migrate }] = await Promise.all([import('../config.js'), import('../main.js')]);
      const applied = await migrate(loadConfig());
      contextOf(cmd).print(applied.length === 0 ? 'migrations: up to date' : `migrations applied: ${applied.join(', ')}`, { applied });
    });

  program
    .command('services')
    .description('the backing services for development (scripts/services): PostgreSQL, Redis, ClickHouse')
    .addArgument(
      new Argument('<action>', 'up: start what is missing; down: stop the local ClickHouse; status: one line each').choices([
        'up',
        'down',
        'status',
      ]),
    )
    .action(
      (action: string) =>
        new Promise<void>((resolve, reject) => {
          const script = fileURLToPath(new URL('../../scripts/services', import.meta.url));
          const child = spawn('bash', [script, action], { stdio: 'inherit' });
          child.once('error', reject);
          child.once('exit', (code, signal) => {
            ending.code = code ?? (signal === null ? 1 : 128);
            resolve();
          });
        }),
    );

  program
    .command('config')
    .description('every setting: variable, resolved value (secrets redacted), default and where it came from; --json for all fields')
    .action(async (_opts: unknown, cmd: Command) => {
      const [{ readConfig }, { configReport, formatConfigReport }] = await Promise.all([
        import('../config.js'),
        import('../config/report.js'),
      ]);
      const reading = readConfig();
      if (reading.errors.length > 0) {
        console.error(['herald: invalid configuration', ...reading.errors.map((e) => `  ${e.field} ${e.error}`)].join('\n'));
        ending.code = 1;
        return;
      }
      if (reading.config.apiKeys.length === 0)
        console.error('herald: HERALD_API_KEYS is not set; herald serve refuses to start without it');
      const report = configReport(reading);
      const ctx = contextOf(cmd);
      process.stdout.write(`${ctx.json ? JSON.stringify(report, null, 2) : formatConfigReport(report)}\n`);
    });
}
