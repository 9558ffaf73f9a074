-- Who may do what (principals and their grants), how they prove it (tokens, stored only as a
-- SHA-256 digest), and what administrators did (the audit log). Numbered 0030 to leave room for
-- migrations other work adds meanwhile.
CREATE TABLE pgmesh.principals (
  name       text PRIMARY KEY,
  -- "permission:pattern" strings, e.g. "publish:orders.*", "read:*", "admin".
  grants     text[] NOT NULL,
  -- The `source` values (patterns) the principal may publish as; empty: any.
  sources    text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pgmesh.tokens (
  -- The first 16 hex digits of the digest: a public name for the token, safe to list and log.
  id          text PRIMARY KEY,
  principal   text NOT NULL REFERENCES pgmesh.principals (name) ON DELETE CASCADE,
  digest      bytea NOT NULL,
  description text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  revoked_at  timestamptz
);
CREATE INDEX tokens_principal ON pgmesh.tokens (principal);

CREATE TABLE pgmesh.audit_log (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at        timestamptz NOT NULL DEFAULT now(),
  -- The principal's name, "anonymous" when authentication is off, plus how it authenticated.
  principal text NOT NULL,
  method    text NOT NULL,
  resource  text NOT NULL,
  -- The gRPC status code's name, e.g. OK or PERMISSION_DENIED, and the status message.
  result    text NOT NULL,
  detail    text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON pgmesh.audit_log (at);
