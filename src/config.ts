/**
 * Configuration: the schema (config/schema.ts) resolved from the environment once at boot, validated,
 * frozen. A bad value fails the boot naming its variable, never later in the hot path, and every bad
 * value is reported at once, so a deployment is fixed in one round.
 */
import { createHmac } from 'node:crypto';
import { HeraldError, type FieldError } from './errors.js';
import { SCHEMA, type Schema, type SettingName } from './config/schema.js';
import type { Setting, SettingValue } from './config/settings.js';

export { SCHEMA, LOG_LEVELS, type SettingName } from './config/schema.js';

/** The resolved configuration: one field per setting of the schema, of the type its kind parses to. */
export type Config = { readonly [K in SettingName]: SettingValue<Schema[K]> };

export type Env = Record<string, string | undefined>;

/** The schema's settings in order (the order boot errors, the README and `herald config` list them in). */
// Object.entries types its keys as string; these are the schema's own keys.
export const SETTINGS = Object.entries(SCHEMA) as Array<[SettingName, Setting<unknown>]>;

/** A Config built one setting at a time. */
function build(value: (name: SettingName, setting: Setting<unknown>) => unknown): Config {
  // Config is inferred from SCHEMA, and `value` gives each setting a value of its own kind (its default
  // or what its parser returned), so the object has Config's keys and types by construction.
  return Object.fromEntries(SETTINGS.map(([name, s]) => [name, value(name, s)])) as Config;
}

/** Unwritten event rows before senders wait (HERALD_SINK_MAX_BUFFERED_ROWS; 0: two batches). */
export function sinkBufferedRows(c: Pick<Config, 'sinkMaxBufferedRows' | 'sinkFlushRows'>): number {
  return c.sinkMaxBufferedRows === 0 ? 2 * c.sinkFlushRows : c.sinkMaxBufferedRows;
}

export const DEFAULTS: Config = Object.freeze(build((_, s) => s.default));

/** Rules across settings, checked on the resolved values; each names the variable to change. */
const RULES: ReadonlyArray<(c: Config) => FieldError | null> = [
  (c) =>
    c.sinkMaxBufferedRows !== 0 && c.sinkMaxBufferedRows < c.sinkFlushRows
      ? { field: SCHEMA.sinkMaxBufferedRows.env, error: `must be at least ${SCHEMA.sinkFlushRows.env}` }
      : null,
];

export interface ConfigReading {
  /** every setting: the environment's value where it is set and valid, its default otherwise */
  config: Config;
  /** the settings whose variable is set (an empty variable counts as unset) */
  fromEnv: ReadonlySet<SettingName>;
  /** every bad value, in schema order, then the cross-setting rules' */
  errors: FieldError[];
}

/** Reads every setting from `env` without failing: what `loadConfig` checks and `herald config` shows. */
export function readConfig(env: Env = process.env): ConfigReading {
  const errors: FieldError[] = [];
  const fromEnv = new Set<SettingName>();
  const config = build((name, s) => {
    const raw = env[s.env];
    if (raw === undefined || raw === '') return s.default;
    fromEnv.add(name);
    const parsed = s.parse(raw);
    if (parsed.ok) return parsed.value;
    errors.push({ field: s.env, error: parsed.error });
    return s.default;
  });
  for (const rule of RULES) {
    const error = rule(config);
    if (error !== null) errors.push(error);
  }
  return { config, fromEnv, errors };
}

/** The boot error for bad settings: every one in the message and in `details.fields`. */
export function configError(errors: readonly FieldError[]): HeraldError {
  return new HeraldError('CONFIG_INVALID', `invalid configuration: ${errors.map((e) => `${e.field} ${e.error}`).join('; ')}`, {
    fields: errors,
  });
}

/** Resolves the environment over DEFAULTS; `overrides` win over both (tests, the demo) and are not checked. */
export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
  const { config, errors } = readConfig(env);
  if (errors.length > 0) throw configError(errors);
  return Object.freeze({ ...config, ...overrides });
}

/** The API refuses to start without a key: an open admin API would let anyone message every user. */
export function requireApiKeys(cfg: Config): void {
  if (cfg.apiKeys.length === 0) {
    throw new HeraldError('CONFIG_INVALID', 'HERALD_API_KEYS is required: set one or more comma-separated keys (8+ characters)', {
      field: 'HERALD_API_KEYS',
    });
  }
}

/**
 * A dispatcher without the API (`herald worker`) still signs every webhook message's tracking and
 * unsubscribe links, which the API processes verify: it needs their HERALD_SECRET, or their HERALD_API_KEYS
 * to derive it from, or every link it makes would be refused.
 */
export function requireSigningKey(cfg: Config): void {
  if (cfg.secret === '' && cfg.apiKeys.length === 0) {
    throw new HeraldError(
      'CONFIG_INVALID',
      "HERALD_SECRET (or HERALD_API_KEYS) is required: set it to the API processes' value, which verify the links this process signs",
      { field: 'HERALD_SECRET' },
    );
  }
}

/**
 * The key tokens are signed with: HERALD_SECRET, or one derived from the API keys (so a single-key setup
 * works out of the box; changing the keys then invalidates every token, which is the safe direction).
 */
export function tokenSecret(cfg: Config): string {
  if (cfg.secret !== '') return cfg.secret;
  return createHmac('sha256', 'herald token secret').update(cfg.apiKeys.join(',')).digest('base64url');
}

/** PostgreSQL connections of the dispatcher and the API: HERALD_DB_POOL_SIZE, or 4 and 2 per consumer. */
export function dbPoolSize(cfg: Config): number {
  return cfg.dbPoolSize > 0 ? cfg.dbPoolSize : 4 + cfg.workers * 2;
}
