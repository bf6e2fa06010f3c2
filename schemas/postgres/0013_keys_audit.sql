-- 0013_keys_audit: scoped API keys and the audit trail of control actions.
-- api_keys holds only the SHA-256 of each key's secret (256 random bits: nothing to guess, so no slow KDF);
-- the bearer `hk_<id>_<secret>` is shown once when the key is made. A revoked key keeps its row, so the
-- audit still names it. HERALD_API_KEYS (the bootstrap admin keys, `env:<n>`) have no row.
CREATE TABLE api_keys (
  id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
  name text NOT NULL,
  scopes text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'send', 'audience', 'admin']),
  secret_sha256 bytea NOT NULL CHECK (octet_length(secret_sha256) = 32),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  -- written at most once a minute per key and process, after the request it dates
  last_used_at timestamptz
);

-- One row per control action (campaign commands, PATCH, test sends, imports, suppression and topic changes,
-- key changes), written in the transaction of the change. key_name is the key's name then (bootstrap keys
-- and unsubscribe links have no row to join). No foreign key to campaigns: the trail outlives what it names.
CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  key_id text NOT NULL,
  key_name text,
  request_id text NOT NULL,
  action text NOT NULL,
  campaign_id bigint,
  status_before text,
  status_after text,
  detail jsonb
);
-- GET /v1/audit?campaign_id=: newest first, keyset by id
CREATE INDEX audit_log_by_campaign ON audit_log (campaign_id, id);
