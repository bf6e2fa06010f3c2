/**
 * The one place that turns values into ClickHouse SQL literals. ClickHouse 18.16 has no query
 * parameters, so every value in a statement passes through here, validated first.
 */
import { SUB_BATCH_LAYOUT } from '../domain/sub-batch.js';

export function identifier(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new RangeError(`not a ClickHouse identifier: ${JSON.stringify(name)}`);
  return name;
}

/** Unsigned integer literal; refuses anything that is not a safe non-negative integer. */
export function uint(value: number): string {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not an unsigned integer: ${String(value)}`);
  return String(value);
}

const STRING_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  "'": "\\'",
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\0': '\\0',
  '\b': '\\b',
  '\f': '\\f',
};

/** Single-quoted string literal with backslash escapes, as both 18.16 and 24.x parse them. */
export function str(value: string): string {
  return `'${value.replace(/[\\'\n\r\t\0\b\f]/g, (c) => STRING_ESCAPES[c] ?? c)}'`;
}

/** UInt64 literal from a bigint (ids beyond 2^53, such as random batch ids). */
export function uint64(value: bigint): string {
  if (value < 0n || value >= 1n << 64n) throw new RangeError(`not a UInt64: ${String(value)}`);
  return value.toString();
}

export function uintList(values: readonly number[]): string {
  if (values.length === 0) throw new RangeError('empty list');
  return `(${values.map(uint).join(', ')})`;
}

export function strList(values: readonly string[]): string {
  if (values.length === 0) throw new RangeError('empty list');
  return `(${values.map(str).join(', ')})`;
}

export function uint64List(values: readonly bigint[]): string {
  if (values.length === 0) throw new RangeError('empty list');
  return `(${values.map(uint64).join(', ')})`;
}

/**
 * A condition on `message_events.batch`: the row is an outcome (delivered or failed) of a sub-batch of plan
 * generation `generation` or later (domain/sub-batch.ts lays the id out). 18.16 has bitShiftRight/bitAnd.
 */
export function outcomeSinceGeneration(generation: number): string {
  const L = SUB_BATCH_LAYOUT;
  return (
    `(bitShiftRight(batch, ${L.kindShift}) = ${L.outcomeKind} AND ` +
    `bitAnd(bitShiftRight(batch, ${L.generationShift}), ${L.generationMask}) >= ${uint(generation)})`
  );
}
