import { describe, expect, it } from 'vitest';
import { apiRoutes, type ApiDeps } from '../../src/api/routes.js';
import { openApiPath } from '../../src/api/openapi.js';
import { useHerald } from '../helpers/herald.js';

const METHODS = ['get', 'post', 'patch', 'put', 'delete'];

/** A value for each path parameter: ids are numbers, the rest plain text. */
function fill(path: string): string {
  return path.replace(/\{([^}]+)\}/g, (_, name: string) => (name === 'user_id' || name === 'token' ? 'someone' : '987654'));
}

describe('GET /v1/openapi.json', () => {
  const ctx = useHerald({ workers: 0 });

  it('is served without a key and describes exactly the route table', async () => {
    const res = await fetch(`${ctx.api.base}/v1/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { operationId: string }>> };
    expect(doc.openapi).toBe('3.1.0');

    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => METHODS.includes(m))
        .map((method) => ({ path, method, name: ops[method]!.operationId })),
    );
    // Building the table calls none of its dependencies.
    const table = apiRoutes({} as ApiDeps);
    expect(new Set(table.map((r) => r.name)).size).toBe(table.length);
    expect(documented.map((d) => `${d.method} ${d.path} ${d.name}`).sort()).toEqual(
      table.map((r) => `${r.method} ${openApiPath(r.path)} ${r.name}`).sort(),
    );
  });

  it('lists only routes that are served: none answers the 404 for an unknown route', async () => {
    const isNoRoute = (r: { status: number; body: any }): boolean => r.status === 404 && r.body?.error === 'no such route';
    // The check can tell: an unknown path or method gets exactly that answer.
    expect(isNoRoute(await ctx.api.call('GET', '/v1/not-a-route'))).toBe(true);
    expect(isNoRoute(await ctx.api.call('PATCH', '/v1/audiences'))).toBe(true);

    const doc = (await ctx.api.call('GET', '/v1/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const answers: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops).filter((m) => METHODS.includes(m))) {
        // Empty bodies and unknown ids: every route answers (400, 404 of its own, 200 …) without changing anything.
        const r = await ctx.api.call(method.toUpperCase(), fill(path), method === 'get' ? undefined : '');
        answers.push(`${method} ${path} ${r.status}`);
        expect(isNoRoute(r), `${method} ${path}`).toBe(false);
      }
    }
    expect(answers.length).toBeGreaterThan(25);
  });
});
