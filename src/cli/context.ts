/**
 * What every command of the command line gets: the global options resolved (`--url`, `--key`, `--json`,
 * or HERALD_URL / HERALD_API_KEY), a client made on first use, and one way to print an answer.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { CliError, HeraldClient } from './client.js';

export interface GlobalOptions {
  url?: string;
  key?: string;
  json?: boolean;
}

export interface Context {
  json: boolean;
  out: NodeJS.WriteStream;
  /** the API client; a usage error when no key is given */
  client(): HeraldClient;
  /** `--json`: the value as JSON; else the human text */
  print(human: string, value: unknown): void;
}

export const DEFAULT_URL = `http://127.0.0.1:${process.env.HERALD_PORT ?? '8080'}`;

/** HERALD_API_KEY, else the first of the server's own HERALD_API_KEYS (a shell that also runs the server). */
export function defaultKey(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const key = env.HERALD_API_KEY?.trim();
  if (key) return key;
  return env.HERALD_API_KEYS?.split(',')[0]?.trim() || undefined;
}

export function contextOf(cmd: Command): Context {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const json = g.json === true;
  let client: HeraldClient | null = null;
  return {
    json,
    out: process.stdout,
    client: () => {
      const key = g.key ?? defaultKey();
      if (key === undefined) throw new CliError('no API key: pass --key or set HERALD_API_KEY', 2);
      client ??= new HeraldClient({ url: g.url ?? process.env.HERALD_URL ?? DEFAULT_URL, key });
      return client;
    },
    print: (human, value) => {
      process.stdout.write(`${json ? JSON.stringify(value, null, 2) : human}\n`);
    },
  };
}

/** commander parser of a positive integer (ids, limits). */
export function positiveInt(value: string): number {
  if (!/^[0-9]{1,15}$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('must be a positive integer');
  return Number(value);
}

/** commander parser of a non-negative number (rates). */
export function nonNegative(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a non-negative number');
  return n;
}

/** commander parser of a JSON value. */
export function jsonValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new InvalidArgumentError(`must be JSON (${(err as Error).message})`);
  }
}

/** commander collector of a repeatable option. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** How the process ends once the command's action returns: with `code`, or it keeps running (a server). */
export const ending: { code: number; running: boolean } = { code: 0, running: false };
