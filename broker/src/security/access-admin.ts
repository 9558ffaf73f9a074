// The admin use cases for principals, tokens and the audit log, plus the first admin token.
import { isBigintText } from "../delivery/bigint-text.ts";
import { invalidArgument, MeshError, notFound } from "../delivery/errors.ts";
import type { Page } from "../delivery/model.ts";
import { checkPattern, type Grant, grantToString, type Principal, parseGrant } from "./grants.ts";
import type { AccessStore, AuditRecord, PrincipalRecord, TokenInfo } from "./ports.ts";
import { generateToken, tokenDigest, tokenId } from "./tokens.ts";

/** The principal the first admin token belongs to. */
export const BOOTSTRAP_PRINCIPAL = "admin";

// Principal names allow what service names, host names and e-mail addresses hold (they often
// name the same thing as a client certificate PGMESH_CERT_PRINCIPALS maps to them).
const PRINCIPAL_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$/;
const MAX_TTL_SECONDS = 10 * 366 * 24 * 60 * 60;

export class AccessAdmin {
  /**
   * `changed` runs after every change made here: this broker forgets what it cached at once,
   * rather than when its own NOTIFY comes back (the others learn of it from that NOTIFY).
   */
  constructor(
    private readonly store: AccessStore,
    private readonly changed: () => void = () => {},
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Without `sources` the principal publishes as its own name only: (source, id) is the
   * idempotency key, so a principal that may publish as another service's source could publish
   * first under that service's ids and have the real events dropped as duplicates.
   */
  async createPrincipal(name: string, grants: string[], sources: string[]): Promise<PrincipalRecord> {
    const principal = checkPrincipal(name, grants, sources);
    const created = await this.store.insertPrincipal(principal);
    if (!created) throw new MeshError("already_exists", `principal ${name} already exists`);
    this.changed();
    return created;
  }

  /**
   * Replaces the principal's grants and sources (the same rules and defaults as at creation). Its
   * tokens stay; every broker re-checks the streams open as it and ends those no longer allowed.
   */
  async updatePrincipal(name: string, grants: string[], sources: string[]): Promise<PrincipalRecord> {
    const principal = checkPrincipal(name, grants, sources);
    const updated = await this.store.updatePrincipal(principal);
    if (!updated) throw notFound(`principal ${name} not found`);
    this.changed();
    return updated;
  }

  listPrincipals(): Promise<PrincipalRecord[]> {
    return this.store.listPrincipals();
  }

  async deletePrincipal(name: string): Promise<void> {
    if (!(await this.store.deletePrincipal(name))) throw notFound(`principal ${name} not found`);
    this.changed();
  }

  /** The token itself is in the result and nowhere else: only its digest is stored. */
  async createToken(
    principal: string,
    ttlSeconds: number | undefined,
    description: string,
  ): Promise<{ token: string; info: TokenInfo }> {
    if (
      ttlSeconds !== undefined &&
      (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS)
    ) {
      throw invalidArgument(`ttl must be 1s..${MAX_TTL_SECONDS}s when set, got ${ttlSeconds}s`);
    }
    if (description.length > 200) throw invalidArgument("description is at most 200 characters");
    const token = generateToken();
    const digest = tokenDigest(token);
    const expiresAt =
      ttlSeconds === undefined ? undefined : new Date(this.now().getTime() + ttlSeconds * 1000);
    const stored = await this.store.insertToken({
      id: tokenId(digest),
      digest,
      principal,
      description,
      expiresAt,
    });
    if (!stored) throw notFound(`principal ${principal} not found`);
    this.changed();
    return { token, info: stored.info };
  }

  listTokens(principal: string | undefined): Promise<TokenInfo[]> {
    return this.store.listTokens(principal);
  }

  async revokeToken(id: string): Promise<TokenInfo> {
    const revoked = await this.store.revokeToken(id);
    if (!revoked) throw notFound(`token ${id} not found`);
    this.changed();
    return revoked;
  }

  listAudit(pageSize: number, pageToken: string, principal: string | undefined): Promise<Page<AuditRecord>> {
    if (pageSize > 1000) throw invalidArgument(`page_size is at most 1000, got ${pageSize}`);
    if (pageToken && !isBigintText(pageToken))
      throw invalidArgument("page_token is not one this server returned");
    return this.store.listAudit(pageToken || undefined, pageSize || 100, principal);
  }

  /**
   * Makes sure an admin can get in. A token from the environment is registered (once: revoking it
   * sticks), and any earlier token from the environment is revoked, so that changing
   * PGMESH_ADMIN_TOKEN and restarting rotates it. Without one, the first broker to start on an
   * empty database creates a token and returns it so that it can be shown once; later starts
   * return undefined.
   */
  async bootstrap(configured: string | undefined): Promise<string | undefined> {
    const admin: Principal = {
      name: BOOTSTRAP_PRINCIPAL,
      grants: [{ permission: "admin", pattern: "*" }],
      sources: ["*"],
    };
    if (configured !== undefined) {
      await this.store.upsertPrincipal(admin);
      const digest = tokenDigest(configured);
      await this.store.insertToken({
        id: tokenId(digest),
        digest,
        principal: admin.name,
        description: "from PGMESH_ADMIN_TOKEN",
        expiresAt: undefined,
        fromEnvironment: true,
      });
      if ((await this.store.revokeEnvironmentTokensExcept(tokenId(digest))).length > 0) this.changed();
      return undefined;
    }
    if (!(await this.store.insertPrincipal(admin))) return undefined;
    const { token } = await this.createToken(admin.name, undefined, "generated at first start");
    return token;
  }
}

function checkPrincipal(name: string, grants: string[], sources: string[]): Principal {
  if (!PRINCIPAL_NAME.test(name)) {
    throw invalidArgument(
      `name ${JSON.stringify(name)} must be 1-200 letters, digits, '.', '_', '@' or '-', starting with a letter or digit`,
    );
  }
  if (grants.length === 0) throw invalidArgument("grants must name at least one permission, e.g. read:*");
  const parsed: Grant[] = grants.map(parseGrant);
  for (const [i, s] of sources.entries()) checkPattern(`sources[${i}]`, s);
  return { name, grants: dedupe(parsed), sources: sources.length > 0 ? [...new Set(sources)] : [name] };
}

function dedupe(grants: Grant[]): Grant[] {
  const seen = new Map(grants.map((g) => [grantToString(g), g]));
  return [...seen.values()];
}
