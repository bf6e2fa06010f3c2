/**
 * `herald`, the command line (bin/herald runs this file): the server's commands (serve, worker, migrate,
 * services, config) and a client of a running server for audiences, campaigns and recipients. commander
 * parses and documents the flags; every failure ends in one message on stderr and a non-zero exit code
 * (format.ts EXIT).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { audienceCommands } from './audience-commands.js';
import { keyCommands } from './key-commands.js';
import { campaignCommands } from './campaign-commands.js';
import { isHeraldError } from '../errors.js';
import { CliError } from './client.js';
import { DEFAULT_URL, ending } from './context.js';
import { EXIT } from './format.js';
import { serverCommands } from './server-commands.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command('herald')
    .description('Herald, the mass-message dispatcher: run it, and drive a running one')
    .version(version)
    .addOption(new Option('--url <url>', 'the Herald server').env('HERALD_URL').default(DEFAULT_URL))
    .addOption(new Option('--key <key>', 'an API key of the server (else the first of HERALD_API_KEYS)').env('HERALD_API_KEY'))
    .option('--json', 'print answers as JSON, for scripts')
    // Errors are thrown (below) rather than exiting inside commander, so they end as every other error does.
    .exitOverride()
    .showHelpAfterError('(herald --help, or herald <command> --help, lists the options)')
    .addHelpText(
      'after',
      `
Exit codes: 0 success; 1 an error (the server's answer, unreachable, a failed import); 2 bad flags or arguments;
campaign watch: 0 completed with no failures, 3 completed with failures, 4 cancelled, 5 failed.`,
    );
  serverCommands(program);
  audienceCommands(program);
  campaignCommands(program);
  keyCommands(program);
  return program;
}

/** Runs one command line; resolves with the exit code, or null while a server runs. */
export async function run(argv: readonly string[]): Promise<number | null> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    return failure(err);
  }
  return ending.running ? null : ending.code;
}

function failure(err: unknown): number {
  if (err instanceof CommanderError) {
    // help and --version "fail" with code 0; commander has printed the message already
    return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (err instanceof CliError) {
    process.stderr.write(`herald: ${err.message}\n`);
    return err.exitCode;
  }
  // a HeraldError (bad configuration, a service down at start) carries a message meant for users
  if (isHeraldError(err)) process.stderr.write(`herald: ${err.message}\n`);
  else process.stderr.write(`herald: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT.error;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const code = await run(process.argv.slice(2));
  // A client command is done: its sockets need not linger (undici keeps them alive for a while).
  if (code !== null) process.stdout.write('', () => process.exit(code));
}
