/**
 * API keys and the audit trail:
 *   POST /v1/keys {name, scopes}   (admin) a new key; its bearer `hk_<id>_<secret>` is in this answer only
 *   GET /v1/keys                   (admin) every key, bootstrap ones too, never a secret
 *   DELETE /v1/keys/:id            (admin) revokes: at once here, within KEY_CACHE_MS in other processes
 *   GET /v1/audit                  (read) control actions, newest first, keyset-paginated by id
 */
import { HeraldError } from '../errors.js';
import { bootstrapKeyId, KEY_ID_PATTERN, mintApiKey, MAX_KEY_NAME, SCOPES, validateCreateKey } from '../domain/api-keys.js';
import { AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT, validateAuditQuery } from '../domain/audit.js';
import type { AuditRepo, AuditRow } from '../store/audit-repo.js';
import type { KeyRepo, StoredKey } from '../store/key-repo.js';
import type { JsonSchema, Route } from './route.js';
import { beforeParam, jsonBody, limitParam } from './schemas.js';

export interface KeyApiDeps {
  /** HERALD_API_KEYS, listed as the bootstrap keys */
  apiKeys: readonly string[];
  keys: Pick<KeyRepo, 'create' | 'list' | 'revoke'>;
  audit: Pick<AuditRepo, 'list'>;
  /** a key revoked here stops working here at once */
  forgetKey(id: string): void;
}

export const CREATE_KEY: JsonSchema = {
  type: 'object',
  required: ['name', 'scopes'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: MAX_KEY_NAME },
    scopes: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: [...SCOPES] } },
  },
};

const KEY_PARAM = {
  name: 'id',
  description: 'the key id (16 hex digits; bootstrap keys env:<n> cannot be revoked here)',
  schema: { type: 'string' },
};
const KEY_VIEW = '{id, name, scopes, created_at, revoked_at, last_used_at, bootstrap}';

function keyView(k: StoredKey): Record<string, unknown> {
  return {
    id: k.id,
    name: k.name,
    scopes: k.scopes,
    created_at: k.createdAt.toISOString(),
    revoked_at: k.revokedAt?.toISOString() ?? null,
    last_used_at: k.lastUsedAt?.toISOString() ?? null,
    bootstrap: false,
  };
}

/** The dashboard's audit panel reads exactly these names. */
function auditView(r: AuditRow): Record<string, unknown> {
  return {
    id: r.id,
    at: r.at.toISOString(),
    key_id: r.keyId,
    key_name: r.keyName,
    request_id: r.requestId,
    action: r.action,
    campaign_id: r.campaignId,
    status_before: r.statusBefore,
    status_after: r.statusAfter,
    detail: r.detail,
  };
}

export function keyRoutes(deps: KeyApiDeps): Route[] {
  return [
    {
      name: 'createKey',
      method: 'post',
      path: '/v1/keys',
      auth: 'admin',
      summary: 'Make an API key with scopes; its bearer is in this answer only (PostgreSQL keeps a hash)',
      body: jsonBody(CREATE_KEY, 'the key: a name, and scopes among read, send, audience, admin'),
      responses: {
        201: `${KEY_VIEW.slice(0, -1)}, key}: key is the bearer, shown once`,
        400: 'a bad name, or an unknown scope (field scopes[i])',
      },
      handler: async (req) => {
        const input = validateCreateKey(await req.json());
        const minted = mintApiKey();
        const stored = await deps.keys.create(
          { id: minted.id, name: input.name, scopes: input.scopes, sha256: minted.sha256 },
          { actor: req.actor, action: 'key.create', detail: { key_id: minted.id, name: input.name, scopes: input.scopes } },
        );
        return { status: 201, body: { ...keyView(stored), key: minted.key } };
      },
    },
    {
      name: 'listKeys',
      method: 'get',
      path: '/v1/keys',
      auth: 'admin',
      summary: 'Every key, newest first, then the bootstrap keys of HERALD_API_KEYS; no secrets',
      responses: { 200: `{keys: [${KEY_VIEW}]}` },
      handler: async () => {
        const stored = (await deps.keys.list()).map(keyView);
        const bootstrap = deps.apiKeys.map((_, i) => ({
          id: bootstrapKeyId(i),
          name: `HERALD_API_KEYS #${i + 1}`,
          scopes: ['admin'],
          created_at: null,
          revoked_at: null,
          last_used_at: null,
          bootstrap: true,
        }));
        return { status: 200, body: { keys: [...stored, ...bootstrap] } };
      },
    },
    {
      name: 'revokeKey',
      method: 'delete',
      path: '/v1/keys/:id',
      auth: 'admin',
      summary: 'Revoke a key: 401 for it at once in this process, within the key cache bound in others; idempotent',
      params: [KEY_PARAM],
      responses: { 200: KEY_VIEW, 400: 'not a key id, or a bootstrap key', 404: 'no such key' },
      handler: async (req) => {
        const id = req.params[0] ?? '';
        if (id.startsWith('env:'))
          throw HeraldError.invalid([{ field: 'id', error: 'is a bootstrap key: remove it from HERALD_API_KEYS instead' }]);
        if (!KEY_ID_PATTERN.test(id)) throw HeraldError.invalid([{ field: 'id', error: 'must be a key id (16 hex digits)' }]);
        const k = await deps.keys.revoke(id, (key) => ({
          actor: req.actor,
          action: 'key.revoke',
          detail: { key_id: key.id, name: key.name },
        }));
        deps.forgetKey(id);
        return { status: 200, body: keyView(k) };
      },
    },
    {
      name: 'listAudit',
      method: 'get',
      path: '/v1/audit',
      auth: 'read',
      summary: 'Control actions (campaign commands, PATCH, test sends, imports, suppressions, topics, keys), newest first',
      query: [
        { name: 'campaign_id', description: "only this campaign's actions", schema: { type: 'integer', minimum: 1 } },
        limitParam(AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT),
        beforeParam('audit entry'),
      ],
      responses: {
        200: '{items: [{id, at, key_id, key_name, request_id, action, campaign_id, status_before, status_after, detail}], next_before}',
        400: 'a bad query parameter',
      },
      handler: async (req) => {
        const q = validateAuditQuery(req.query);
        const rows = await deps.audit.list(q);
        const last = rows[rows.length - 1];
        return { status: 200, body: { items: rows.map(auditView), next_before: rows.length === q.limit && last ? last.id : null } };
      },
    },
  ];
}
