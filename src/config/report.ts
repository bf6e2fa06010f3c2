/**
 * What `herald config` prints: every setting with its variable, the value this environment resolves it
 * to, its default and whether the environment set it. Secrets and the passwords in URLs are redacted,
 * so the output can be pasted into an issue or a log.
 */
import { SETTINGS, type ConfigReading } from '../config.js';
import type { Setting } from './settings.js';

export const REDACTED = '***';

export interface SettingReport {
  name: string;
  env: string;
  /** as resolved (numbers are numbers, lists arrays), redacted */
  value: unknown;
  default: unknown;
  /** what the default means when the value alone does not say it (README's default column) */
  defaultDoc?: string;
  fromEnv: boolean;
}

/** A URL with its password, if any, replaced (the rest stays as written). */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password === '') return raw;
    u.password = REDACTED;
    return u.toString();
  } catch {
    return raw;
  }
}

function redact(setting: Setting<unknown>, value: unknown): unknown {
  if (setting.secret === true) {
    if (Array.isArray(value)) return value.map(() => REDACTED);
    return value === '' ? '' : REDACTED;
  }
  return setting.type === 'url' && typeof value === 'string' ? redactUrl(value) : value;
}

export function configReport(reading: ConfigReading): SettingReport[] {
  return SETTINGS.map(([name, s]) => ({
    name,
    env: s.env,
    value: redact(s, reading.config[name]),
    default: redact(s, s.default),
    ...(s.defaultDoc === undefined ? {} : { defaultDoc: s.defaultDoc }),
    fromEnv: reading.fromEnv.has(name),
  }));
}

/** A value as a person reads it: lists comma-separated, an empty value as "(empty)". */
export function showValue(value: unknown): string {
  const text = Array.isArray(value) ? value.join(',') : String(value);
  return text === '' ? '(empty)' : text;
}

/** One aligned line per setting: variable, value, default, source. */
export function formatConfigReport(report: readonly SettingReport[]): string {
  const rows = [
    ['variable', 'value', 'default', 'from'],
    ...report.map((r) => [
      r.env,
      showValue(r.value),
      r.defaultDoc === undefined ? showValue(r.default) : r.defaultDoc.replaceAll('`', ''),
      r.fromEnv ? 'env' : 'default',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}
