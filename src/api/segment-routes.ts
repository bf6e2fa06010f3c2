/**
 * Segments under /v1/segments: create one (a named filter over an audience), read it, and count the
 * recipients it selects, exactly. Campaigns take a segment by `segment_id` (campaign-routes.ts).
 */
import type { Logger } from 'pino';
import { HeraldError } from '../errors.js';
import { parseId, validateCreateSegment } from '../domain/campaign-input.js';
import type { Segment, SegmentRepo } from '../store/segment-repo.js';
import type { Route } from './route.js';
import { CREATE_SEGMENT, ID_PARAM, jsonBody } from './schemas.js';
import { segmentCountView, segmentView } from './views.js';

export interface SegmentApiDeps {
  segments: SegmentRepo;
  log: Logger;
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
      responses: { 201: '{id, name, audience_id, filter, created_at}' },
      handler: async (req) => {
        const s = await deps.segments.create(validateCreateSegment(await req.json()));
        // Counted at once in the background, so the first GET …/count usually finds the count stored.
        deps.segments.count(s.id).catch((err: unknown) => deps.log.warn({ err, segmentId: s.id }, 'segment count failed'));
        return { status: 201, body: segmentView(s) };
      },
    },
    {
      name: 'getSegment',
      method: 'get',
      path: '/v1/segments/:id',
      auth: 'read',
      params: [ID_PARAM],
      summary: 'A segment',
      responses: { 200: '{id, name, audience_id, filter, created_at}', 404: 'no such segment' },
      handler: async (req) => ({ status: 200, body: segmentView(await requireSegment(req.params[0])) }),
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
