/**
 * README's settings table, written from the schema by `npm run docs:settings` between two marker
 * comments; a unit test fails when the README's copy differs, so the documentation cannot drift.
 */
import { SETTINGS } from '../config.js';
import type { Setting } from './settings.js';

export const TABLE_BEGIN = '<!-- settings:begin — written by `npm run docs:settings` from src/config/schema.ts; edit there -->';
export const TABLE_END = '<!-- settings:end -->';

/** A table cell: `|` would end it early. */
const cell = (text: string): string => text.replaceAll('|', '\\|');

function defaultCell(s: Setting<unknown>): string {
  if (s.defaultDoc !== undefined) return s.defaultDoc;
  const text = Array.isArray(s.default) ? s.default.join(',') : String(s.default);
  return text === '' ? '—' : `\`${text}\``;
}

export function settingsTable(): string {
  const lines = ['| variable | default | allowed | meaning |', '| --- | --- | --- | --- |'];
  for (const [, s] of SETTINGS) lines.push(`| \`${s.env}\` | ${cell(defaultCell(s))} | ${cell(s.range)} | ${cell(s.doc)} |`);
  return lines.join('\n');
}

/** `readme` with the text between the markers replaced by the table; throws if the markers are missing. */
export function withSettingsTable(readme: string): string {
  const begin = readme.indexOf(TABLE_BEGIN);
  const end = readme.indexOf(TABLE_END);
  if (begin < 0 || end < begin) throw new Error(`README.md needs the lines ${TABLE_BEGIN} and ${TABLE_END} around the settings table`);
  return `${readme.slice(0, begin + TABLE_BEGIN.length)}\n${settingsTable()}\n${readme.slice(end)}`;
}
