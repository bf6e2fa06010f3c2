import { describe, expect, it } from 'vitest';
import { identifier, str, uint, uintList } from '../../src/clickhouse/sql.js';
import { splitStatements } from '../../src/migrate/migrate.js';

describe('ClickHouse literals', () => {
  it('escapes strings so no value can end the literal', () => {
    expect(str("it's")).toBe("'it\\'s'");
    expect(str('a\\b')).toBe("'a\\\\b'");
    expect(str('x\ny\tz\0')).toBe("'x\\ny\\tz\\0'");
    expect(str("'; DROP TABLE t; --")).toBe("'\\'; DROP TABLE t; --'");
  });

  it('accepts only safe unsigned integers and identifiers', () => {
    expect(uint(42)).toBe('42');
    expect(() => uint(-1)).toThrow(RangeError);
    expect(() => uint(1.5)).toThrow(RangeError);
    expect(() => uint(Number.MAX_SAFE_INTEGER + 2)).toThrow(RangeError);
    expect(uintList([1, 2, 3])).toBe('(1, 2, 3)');
    expect(() => uintList([])).toThrow(RangeError);
    expect(identifier('herald_t_01')).toBe('herald_t_01');
    expect(() => identifier('a-b')).toThrow(RangeError);
    expect(() => identifier('x; DROP')).toThrow(RangeError);
  });

  it('splits migration files into statements without comments', () => {
    const sql = '-- header\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\n-- more\nCREATE VIEW v AS SELECT 1;\n';
    expect(splitStatements(sql)).toEqual(['CREATE TABLE a (x UInt8) ENGINE = Memory', 'CREATE VIEW v AS SELECT 1']);
  });
});
