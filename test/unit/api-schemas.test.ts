import { describe, expect, it } from 'vitest';
import { HeraldError } from '../../src/errors.js';
import {
  validateCreateAudience,
  validateCreateCampaign,
  validateCreateSegment,
  validateUpdateCampaign,
} from '../../src/domain/campaign-input.js';
import { validateEventBatch } from '../../src/domain/event-input.js';
import {
  CREATE_AUDIENCE,
  CREATE_CAMPAIGN,
  CREATE_SEGMENT,
  EVENT_BATCH,
  SCHEMA_COMPONENTS,
  UPDATE_CAMPAIGN,
} from '../../src/api/schemas.js';
import { openApiDocument, openApiPath } from '../../src/api/openapi.js';
import { CREATE_KEY } from '../../src/api/key-routes.js';
import { validateCreateKey } from '../../src/domain/api-keys.js';
import type { JsonSchema, Route } from '../../src/api/route.js';

/** The fields a validator names when given `body`. */
function fieldsOf(validate: (body: unknown) => unknown, body: unknown): string[] {
  try {
    validate(body);
    return [];
  } catch (err) {
    if (!(err instanceof HeraldError)) throw err;
    const fields = err.details.fields as Array<{ field: string }> | undefined;
    return fields?.map((f) => f.field) ?? [err.details.field as string];
  }
}

const props = (schema: JsonSchema): string[] => Object.keys(schema.properties as object);
// A value of no type any field takes.
const WRONG = { wrong: [] };

describe('body schemas name the fields the validators check', () => {
  const campaign = { name: 'n', audience_id: 1, channel: { type: 'null' }, content: { title: 't', body: 'b' } };

  it('create campaign: the required ones make a valid body; each property is checked by the validator', () => {
    const required = CREATE_CAMPAIGN.required as string[];
    expect(Object.keys(campaign).sort()).toEqual([...required].sort());
    expect(fieldsOf(validateCreateCampaign, campaign)).toEqual([]);
    for (const key of props(CREATE_CAMPAIGN)) {
      expect(fieldsOf(validateCreateCampaign, { ...campaign, [key]: WRONG })[0], key).toMatch(new RegExp(`^${key}(\\.|$)`));
    }
    for (const key of required) {
      const rest: Record<string, unknown> = { ...campaign };
      delete rest[key];
      expect(fieldsOf(validateCreateCampaign, rest)[0], key).toMatch(new RegExp(`^${key}(\\.|$)`));
    }
  });

  it('create segment: the required ones make a valid body, each is checked; the Filter schema names every operator', () => {
    const segment = { name: 's', audience_id: 1, filter: { attr: 'plan', eq: 'pro' } };
    expect(Object.keys(segment).sort()).toEqual([...(CREATE_SEGMENT.required as string[])].sort());
    expect(fieldsOf(validateCreateSegment, segment)).toEqual([]);
    for (const key of props(CREATE_SEGMENT)) {
      expect(fieldsOf(validateCreateSegment, { ...segment, [key]: WRONG })[0], key).toMatch(new RegExp(`^${key}(\\.|$)`));
      const rest: Record<string, unknown> = { ...segment };
      delete rest[key];
      expect(fieldsOf(validateCreateSegment, rest)[0], key).toBe(key);
    }
    const shapes = (SCHEMA_COMPONENTS.Filter!.oneOf as JsonSchema[]).map((o) => (o.required as string[]).filter((k) => k !== 'attr')[0]);
    expect(shapes).toEqual(['and', 'or', 'not', 'exists', 'eq', 'ne', 'in', 'lt', 'lte', 'gt', 'gte']);
  });

  it('create audience and update campaign: the same properties, and nothing else is accepted for an update', () => {
    expect(props(CREATE_AUDIENCE)).toEqual(['name']);
    expect(fieldsOf(validateCreateAudience, {})).toEqual(['name']);
    for (const key of props(UPDATE_CAMPAIGN)) {
      expect(fieldsOf(validateUpdateCampaign, { [key]: null }), key).toEqual([]);
      expect(fieldsOf(validateUpdateCampaign, { [key]: WRONG }), key).toEqual([key]);
    }
    expect(fieldsOf(validateUpdateCampaign, { name: 'x' })).toEqual(['name']);
  });

  it('events: each property of an item is checked, the required ones make a valid item', () => {
    const list = (EVENT_BATCH.oneOf as JsonSchema[])[0]!;
    const item = list.items as JsonSchema;
    const good = { campaign_id: 1, user_id: 'u', kind: 'read' };
    expect(Object.keys(good).sort()).toEqual([...(item.required as string[])].sort());
    expect(validateEventBatch([good], 1000).rejected).toEqual([]);
    for (const key of props(item)) {
      const r = validateEventBatch([{ ...good, [key]: WRONG }], 1000).rejected;
      expect(
        r.map((e) => e.field),
        key,
      ).toEqual([key]);
    }
    expect(validateEventBatch({ events: [good] }, 1000).events).toHaveLength(1);
  });
});

describe('the key body schema names the fields the validator checks', () => {
  it('create key: the required ones make a valid body; each property is checked', () => {
    const good = { name: 'ci', scopes: ['read'] };
    expect(Object.keys(good).sort()).toEqual([...(CREATE_KEY.required as string[])].sort());
    expect(fieldsOf(validateCreateKey, good)).toEqual([]);
    for (const key of props(CREATE_KEY)) expect(fieldsOf(validateCreateKey, { ...good, [key]: WRONG }), key).toEqual([key]);
    expect(fieldsOf(validateCreateKey, { ...good, extra: 1 })).toEqual(['extra']);
  });
});

describe('openApiDocument', () => {
  const route = (over: Partial<Route>): Route => ({
    name: 'op',
    method: 'get',
    path: '/x',
    auth: 'admin',
    summary: 's',
    responses: { 200: 'ok' },
    handler: async () => ({ status: 200 }),
    ...over,
  });

  it('names the scope each route needs, and adds its 401 and 403', () => {
    const doc = openApiDocument(
      [route({ name: 'a', path: '/a', auth: 'send' }), route({ name: 'k', path: '/k', method: 'post', auth: 'admin' })],
      { title: 't', version: 'v1', description: 'd' },
    ) as any;
    const a = doc.paths['/a'].get;
    expect(a.security).toEqual([{ apiKey: ['send'] }]);
    expect(a['x-scope']).toBe('send');
    expect(Object.keys(a.responses).sort()).toEqual(['200', '401', '403']);
    expect(a.responses['403'].description).toContain('send');
    expect(doc.paths['/k'].post.security).toEqual([{ apiKey: ['admin'] }]);
    expect(doc.components.schemas.Error.properties.scope.enum).toEqual(['read', 'send', 'audience', 'admin']);
  });

  it('turns uWS paths into templates, declares every path parameter, and adds the answers auth and bodies imply', () => {
    expect(openApiPath('/v1/users/:user_id/inbox/:campaign_id/read')).toBe('/v1/users/{user_id}/inbox/{campaign_id}/read');
    const doc = openApiDocument(
      [
        route({ name: 'a', path: '/v1/a/:id', auth: 'user', body: { contentTypes: ['application/json'], schema: {}, description: 'b' } }),
        route({ name: 'b', path: '/t/:token', auth: 'public', produces: 'image/gif' }),
      ],
      { title: 't', version: 'v1', description: 'd' },
    ) as any;
    const a = doc.paths['/v1/a/{id}'].get;
    expect(a.parameters).toEqual([{ in: 'path', required: true, name: 'id', description: 'id', schema: { type: 'string' } }]);
    expect(Object.keys(a.responses).sort()).toEqual(['200', '400', '401', '403', '413']);
    expect(a.security).toEqual([{ apiKey: ['read'] }, { userToken: [] }]);
    const b = doc.paths['/t/{token}'].get;
    expect(b.security).toEqual([]);
    expect(Object.keys(b.responses)).toEqual(['200']);
    expect(b.responses['200'].content).toEqual({ 'image/gif': {} });
  });
});
