-- Audit rows name the credential that acted, not just its principal (issue 20): a principal may hold
-- several tokens (one of them leaked), and a certificate mapped to a principal is one of many that
-- could be. `token <id>` (the token's public id) or `certificate sha256:<fingerprint>` (of the
-- client certificate, as `openssl x509 -fingerprint -sha256` prints it); empty with authentication
-- off and on rows written before this migration. Numbered with the security migrations (0030-0034);
-- it depends on nothing after them.
ALTER TABLE pgmesh.audit_log ADD COLUMN credential text NOT NULL DEFAULT '';
-- The broker's upkeep deletes rows past the audit retention (PGMESH_AUDIT_RETENTION_DAYS, 90 days by
-- default) by `at`, which audit_log_at (0030) indexes.
