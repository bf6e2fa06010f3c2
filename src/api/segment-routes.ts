/**
 * Segments under /v1/segments: create one (a named filter over an audience), list, read, change and
 * delete them, and count the recipients one selects, exactly. Campaigns take a segment by `segment_id`
 * (campaign-routes.ts) and keep their own copy of its filter, so a change or a deletion later does not
 * change what they send.
 */
import type { Logger } from 'pino';
import { HeraldError } from '../errors.js';
import { parseId, validateCreateSegment, validateListSegments, validateUpdateSegment } from '../domain/campaign-input.js';
import type { FilterNode } from '../domain/segment-filter.js';
import { indexedLeads } from '../domain/segment-sql.js';
import type { AttrIndexes } from '../store/attr-index.js';
import type { Segment, SegmentRepo } from '../store/segment-repo.js';
import type { Route } from './route.js';
import { beforeParam, CREATE_SEGMENT, ID_PARAM, jsonBody, limitParam, UPDATE_SEGMENT } from './schemas.js';
import { segmentCountView, segmentView } from './views.js';

export interface SegmentApiDeps {
  segments: SegmentRepo;
  attrIndexes: AttrIndexes;
  log: Logger;
}

/**
 * Starts building, in the background, the attribute index a filter's pages can be read from
 * (store/attr-index.ts), once `before` (the segment's first count) is done, so the two do not share the
 * cores; nothing when the filter has no indexable lead. Campaigns plan by the scan until it is valid.
 */
export function indexForFilter(
  deps: Pick<SegmentApiDeps, 'attrIndexes' | 'log'>,
  audienceId: number,
  filter: FilterNode | null,
  before: Promise<unknown> = Promise.resolve(),
): void {
  const lead = filter === null ? undefined : indexedLeads(filter)[0];
  if (lead === undefined) return;
  void before
    .catch(() => undefined)
    .then(() => deps.attrIndexes.ensure(audienceId, lead.attr))
    .then((state) => deps.log.info({ audienceId, attr: lead.attr, state }, 'attribute index'))
    .catch((err: unknown) => deps.log.warn({ err, audienceId, attr: lead.attr }, 'attribute index build failed'));
}

/**
 * In the background, the audience's attribute indexes brought in line with what selects by them once
 * `before` is done (store/attr-index.ts reconcile): a filter's old attribute, or a deleted segment's, is
 * dropped when nothing else selects by it; a new lead is built.
 */
export function reconcileIndexes(
  deps: Pick<SegmentApiDeps, 'attrIndexes' | 'log'>,
  audienceId: number,
  before: Promise<unknown> = Promise.resolve(),
): void {
  void before
    .catch(() => undefined)
    .then(() => deps.attrIndexes.reconcile(audienceId))
    .then((r) => {
      if (r.dropped.length > 0 || r.indexes.length > 0) deps.log.info({ audienceId, ...r }, 'attribute indexes reconciled');
    })
    .catch((err: unknown) => deps.log.warn({ err, audienceId }, 'attribute indexes not reconciled'));
}

export function segmentRoutes(deps: SegmentApiDeps): Route[] {
  const requireSegment = async (raw: string | undefined): Promise<Segment> => {
    const id = parseId(raw, 'id');
    const s = await deps.segments.get(id);
    if (s === null) throw new HeraldError('NOT_FOUND', `segment ${id} not found`);
    return s;
  };
  return [
    {
      name: 'createSegment',
      method: 'post',
      path: '/v1/segments',
      auth: 'audience',
      summary: "Create a segment: a named filter over one audience's recipient attributes",
      body: jsonBody(CREATE_SEGMENT, 'the segment'),
      responses: { 201: '{id, name, audience_id, filter, created_at, updated_at}' },
      handler: async (req) => {
        const s = await deps.segments.create(validateCreateSegment(await req.json()));
        // Counted at once in the background, so the first GET …/count usually finds the count stored.
        const counted = deps.segments.count(s.id);
        counted.catch((err: unknown) => deps.log.warn({ err, segmentId: s.id }, 'segment count failed'));
        indexForFilter(deps, s.audienceId, s.filter, counted);
        return { status: 201, body: segmentView(s) };
      },
    },
    {
      name: 'listSegments',
      method: 'get',
      path: '/v1/segments',
      auth: 'read',
      summary: "Segments, newest first; one audience's with audience_id",
      query: [
        { name: 'audience_id', description: "only this audience's segments", schema: { type: 'integer', minimum: 1 } },
        limitParam(50, 500),
        beforeParam('segment'),
      ],
      responses: { 200: '{items: [{id, name, audience_id, filter, created_at, updated_at, last_count, last_count_max_id}], next_before}' },
      handler: async (req) => {
        const page = await deps.segments.list(validateListSegments(req.query));
        return {
          status: 200,
          body: {
            items: page.items.map((s) => ({ ...segmentView(s), last_count: s.counted, last_count_max_id: s.countedMaxId })),
            next_before: page.nextBefore,
          },
        };
      },
    },
    {
      name: 'updateSegment',
      method: 'patch',
      path: '/v1/segments/:id',
      auth: 'audience',
      params: [ID_PARAM],
      summary: 'Rename a segment or give it a new filter (campaigns already made from it keep theirs)',
      body: jsonBody(UPDATE_SEGMENT, 'the fields to change'),
      responses: { 200: '{id, name, audience_id, filter, created_at, updated_at}', 404: 'no such segment' },
      handler: async (req) => {
        const id = parseId(req.params[0], 'id');
        const input = validateUpdateSegment(await req.json());
        const s = await deps.segments.update(id, input);
        if (s === null) throw new HeraldError('NOT_FOUND', `segment ${id} not found`);
        if (input.filter !== undefined) {
          const counted = deps.segments.count(s.id);
          counted.catch((err: unknown) => deps.log.warn({ err, segmentId: s.id }, 'segment count failed'));
          reconcileIndexes(deps, s.audienceId, counted);
        }
        return { status: 200, body: segmentView(s) };
      },
    },
    {
      name: 'deleteSegment',
      method: 'delete',
      path: '/v1/segments/:id',
      auth: 'audience',
      params: [ID_PARAM],
      summary: 'Delete a segment: gone for the API and for new campaigns; campaigns made from it keep their filter',
      responses: { 204: 'deleted', 404: 'no such segment' },
      handler: async (req) => {
        const s = await requireSegment(req.params[0]);
        if (!(await deps.segments.delete(s.id))) throw new HeraldError('NOT_FOUND', `segment ${s.id} not found`);
        reconcileIndexes(deps, s.audienceId);
        return { status: 204 };
      },
    },
    {
      name: 'getSegment',
      method: 'get',
      path: '/v1/segments/:id',
      auth: 'read',
      params: [ID_PARAM],
      summary: 'A segment',
      responses: {
        200: '{id, name, audience_id, filter, created_at, updated_at, index: {attr, state: ready | building | none | no-partition | limit | unknown} | null}',
        404: 'no such segment',
      },
      handler: async (req) => {
        const s = await requireSegment(req.params[0]);
        // The attribute index its campaigns plan from, when its filter has an indexable lead.
        const lead = indexedLeads(s.filter)[0];
        let index: { attr: string; state: string } | null = null;
        if (lead !== undefined) {
          // The segment is there whatever PostgreSQL's catalog says now: an error here is `unknown`, not a 500.
          const state = await deps.attrIndexes.state(s.audienceId, lead.attr).catch((err: unknown) => {
            deps.log.warn({ err, segmentId: s.id }, 'attribute index state');
            return 'unknown';
          });
          index = { attr: lead.attr, state };
        }
        return { status: 200, body: { ...segmentView(s), index } };
      },
    },
    {
      name: 'countSegment',
      method: 'get',
      path: '/v1/segments/:id/count',
      auth: 'read',
      params: [ID_PARAM],
      summary: "The exact number of the audience's recipients the segment selects now",
      responses: {
        200: '{segment_id, audience_id, count, max_id (the highest recipient id counted), cached}',
        404: 'no such segment',
      },
      handler: async (req) => {
        const s = await requireSegment(req.params[0]);
        return { status: 200, body: segmentCountView(s, await deps.segments.count(s.id)) };
      },
    },
  ];
}
