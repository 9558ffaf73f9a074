// What the security use cases need from storage; store/access-store.ts implements it.
import type { Page } from "../delivery/model.ts";
import type { Principal } from "./grants.ts";

export interface TokenInfo {
  id: string;
  principal: string;
  description: string;
  createdAt: Date;
  expiresAt: Date | undefined;
  revokedAt: Date | undefined;
}

export interface StoredToken extends TokenInfo {
  digest: Buffer;
}

/** A token to store: `fromEnvironment` marks the one registered from PGMESH_ADMIN_TOKEN. */
export type NewToken = Omit<StoredToken, "createdAt" | "revokedAt"> & { fromEnvironment?: boolean };

export interface PrincipalRecord extends Principal {
  createdAt: Date;
}

export interface AuditEntry {
  principal: string;
  /**
   * How the principal proved it: `token <id>` or `certificate sha256:<fingerprint>`; empty when
   * nothing was presented (authentication off).
   */
  credential: string;
  method: string;
  resource: string;
  result: string;
  detail: string;
}

export interface AuditRecord extends AuditEntry {
  id: string;
  at: Date;
}

export interface AccessStore {
  /** The token with its principal; undefined when no token has this id. */
  findToken(id: string): Promise<{ token: StoredToken; principal: Principal } | undefined>;
  findPrincipal(name: string): Promise<Principal | undefined>;
  /** undefined when a principal of that name exists. */
  insertPrincipal(principal: Principal): Promise<PrincipalRecord | undefined>;
  /** Replaces an existing principal's grants and sources; undefined when there is none. */
  updatePrincipal(principal: Principal): Promise<PrincipalRecord | undefined>;
  /** Inserts or replaces the principal's grants and sources. */
  upsertPrincipal(principal: Principal): Promise<void>;
  listPrincipals(): Promise<PrincipalRecord[]>;
  deletePrincipal(name: string): Promise<boolean>;
  /** undefined when the principal does not exist. Existing ids are left alone (and reported false). */
  insertToken(token: NewToken): Promise<{ info: TokenInfo; created: boolean } | undefined>;
  /** Revokes the tokens registered from the environment other than `keepId`; returns their ids. */
  revokeEnvironmentTokensExcept(keepId: string): Promise<string[]>;
  listTokens(principal: string | undefined): Promise<TokenInfo[]>;
  revokeToken(id: string): Promise<TokenInfo | undefined>;
  audit(entry: AuditEntry): Promise<void>;
  listAudit(
    afterId: string | undefined,
    limit: number,
    principal: string | undefined,
  ): Promise<Page<AuditRecord>>;
  /** Called (on every broker) after any principal or token changed. */
  onChange(listener: () => void): Promise<void>;
}
