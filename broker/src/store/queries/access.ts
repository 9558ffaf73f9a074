// Named queries on pgmesh.principals, pgmesh.tokens and pgmesh.audit_log.
import { type Grant, grantToString, type Principal, parseGrant } from "../../security/grants.ts";
import type {
  AuditEntry,
  AuditRecord,
  NewToken,
  PrincipalRecord,
  StoredToken,
  TokenInfo,
} from "../../security/ports.ts";
import type { Sql, TransactionSql } from "../database.ts";

type Runner = Sql | TransactionSql;

/** Sent (in the changing transaction) whenever a principal or token changes; the payload is empty. */
export const ACCESS_CHANNEL = "pgmesh_access_changed";

const toPrincipal = (row: Record<string, unknown>): PrincipalRecord => ({
  name: row.name as string,
  grants: (row.grants as string[]).map(parseGrant),
  sources: row.sources as string[],
  createdAt: row.created_at as Date,
});

const toTokenInfo = (row: Record<string, unknown>): TokenInfo => ({
  id: row.id as string,
  principal: row.principal as string,
  description: row.description as string,
  createdAt: row.created_at as Date,
  expiresAt: (row.expires_at as Date | null) ?? undefined,
  revokedAt: (row.revoked_at as Date | null) ?? undefined,
});

const grantTexts = (grants: Grant[]) => grants.map(grantToString);

export async function notifyAccessChanged(sql: Runner): Promise<void> {
  await sql`SELECT pg_notify(${ACCESS_CHANNEL}, '')`;
}

export async function selectTokenWithPrincipal(
  sql: Runner,
  id: string,
): Promise<{ token: StoredToken; principal: Principal } | undefined> {
  const rows = await sql`
    SELECT t.id, t.principal, t.digest, t.description, t.created_at, t.expires_at, t.revoked_at,
           p.name, p.grants, p.sources, p.created_at AS principal_created_at
    FROM pgmesh.tokens t JOIN pgmesh.principals p ON p.name = t.principal
    WHERE t.id = ${id}`;
  const row = rows[0];
  if (!row) return undefined;
  return { token: { ...toTokenInfo(row), digest: row.digest as Buffer }, principal: toPrincipal(row) };
}

export async function selectPrincipal(sql: Runner, name: string): Promise<PrincipalRecord | undefined> {
  const rows =
    await sql`SELECT name, grants, sources, created_at FROM pgmesh.principals WHERE name = ${name}`;
  return rows[0] ? toPrincipal(rows[0]) : undefined;
}

export async function insertPrincipal(sql: Runner, p: Principal): Promise<PrincipalRecord | undefined> {
  const rows = await sql`
    INSERT INTO pgmesh.principals (name, grants, sources)
    VALUES (${p.name}, ${grantTexts(p.grants)}::text[], ${p.sources}::text[])
    ON CONFLICT (name) DO NOTHING
    RETURNING name, grants, sources, created_at`;
  return rows[0] ? toPrincipal(rows[0]) : undefined;
}

export async function upsertPrincipal(sql: Runner, p: Principal): Promise<void> {
  await sql`
    INSERT INTO pgmesh.principals (name, grants, sources)
    VALUES (${p.name}, ${grantTexts(p.grants)}::text[], ${p.sources}::text[])
    ON CONFLICT (name) DO UPDATE SET grants = excluded.grants, sources = excluded.sources`;
}

export async function updatePrincipalRow(sql: Runner, p: Principal): Promise<PrincipalRecord | undefined> {
  const rows = await sql`
    UPDATE pgmesh.principals SET grants = ${grantTexts(p.grants)}::text[], sources = ${p.sources}::text[]
    WHERE name = ${p.name}
    RETURNING name, grants, sources, created_at`;
  return rows[0] ? toPrincipal(rows[0]) : undefined;
}

export async function selectPrincipals(sql: Runner): Promise<PrincipalRecord[]> {
  const rows = await sql`SELECT name, grants, sources, created_at FROM pgmesh.principals ORDER BY name`;
  return rows.map(toPrincipal);
}

export async function deletePrincipalRow(sql: Runner, name: string): Promise<boolean> {
  const rows = await sql`DELETE FROM pgmesh.principals WHERE name = ${name} RETURNING name`;
  return rows.length > 0;
}

/** undefined when the principal does not exist; created false when a token with this id exists. */
export async function insertToken(
  sql: Runner,
  t: NewToken,
): Promise<{ info: TokenInfo; created: boolean } | undefined> {
  const rows = await sql`
    INSERT INTO pgmesh.tokens (id, principal, digest, description, expires_at, from_environment)
    SELECT ${t.id}, name, ${t.digest}, ${t.description}, ${t.expiresAt ?? null}, ${t.fromEnvironment ?? false}
    FROM pgmesh.principals WHERE name = ${t.principal}
    ON CONFLICT (id) DO NOTHING
    RETURNING id, principal, description, created_at, expires_at, revoked_at`;
  if (rows[0]) return { info: toTokenInfo(rows[0]), created: true };
  const existing = await sql`
    SELECT id, principal, description, created_at, expires_at, revoked_at FROM pgmesh.tokens WHERE id = ${t.id}`;
  return existing[0] ? { info: toTokenInfo(existing[0]), created: false } : undefined;
}

export async function selectTokens(sql: Runner, principal: string | undefined): Promise<TokenInfo[]> {
  const rows = await sql`
    SELECT id, principal, description, created_at, expires_at, revoked_at FROM pgmesh.tokens
    WHERE ${principal ?? null}::text IS NULL OR principal = ${principal ?? null}
    ORDER BY principal, created_at, id`;
  return rows.map(toTokenInfo);
}

/** Revokes the token (keeping the first revocation time); undefined when there is none. */
export async function revokeTokenRow(sql: Runner, id: string): Promise<TokenInfo | undefined> {
  const rows = await sql`
    UPDATE pgmesh.tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = ${id}
    RETURNING id, principal, description, created_at, expires_at, revoked_at`;
  return rows[0] ? toTokenInfo(rows[0]) : undefined;
}

/** Revokes the tokens registered from PGMESH_ADMIN_TOKEN except `keepId`; their ids. */
export async function revokeEnvironmentTokensExcept(sql: Runner, keepId: string): Promise<string[]> {
  const rows = await sql`
    UPDATE pgmesh.tokens SET revoked_at = now()
    WHERE from_environment AND revoked_at IS NULL AND id <> ${keepId}
    RETURNING id`;
  return rows.map((row) => row.id as string);
}

export async function insertAudit(sql: Runner, e: AuditEntry): Promise<void> {
  await sql`
    INSERT INTO pgmesh.audit_log (principal, credential, method, resource, result, detail)
    VALUES (${e.principal}, ${e.credential}, ${e.method}, ${e.resource}, ${e.result}, ${e.detail})`;
}

/** Newest first; `beforeId` pages backwards. */
export async function selectAudit(
  sql: Runner,
  beforeId: string | undefined,
  limit: number,
  principal: string | undefined,
): Promise<AuditRecord[]> {
  const rows = await sql`
    SELECT id::text, at, principal, credential, method, resource, result, detail FROM pgmesh.audit_log
    WHERE (${beforeId ?? null}::bigint IS NULL OR audit_log.id < ${beforeId ?? null}::bigint)
      AND (${principal ?? null}::text IS NULL OR principal = ${principal ?? null})
    ORDER BY audit_log.id DESC LIMIT ${limit}`;
  return rows.map((row) => ({
    id: row.id as string,
    at: row.at as Date,
    principal: row.principal as string,
    credential: row.credential as string,
    method: row.method as string,
    resource: row.resource as string,
    result: row.result as string,
    detail: row.detail as string,
  }));
}
