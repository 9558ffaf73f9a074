// Who is calling: a bearer token, or (under mutual TLS) a verified client certificate whose common
// name the operator mapped to a principal, resolved to a principal. Lookups are cached in memory
// for CACHE_MS so the hot path stays off the database; any change to principals or tokens (on any
// broker: Postgres notifies them all) empties the cache and tells the listeners (the open streams'
// watch), so a revoked token is refused everywhere within moments. Failed attempts are limited per
// peer address and per token id (failed-authentications.ts).
import { MeshError } from "../delivery/errors.ts";
import { attemptKeys, FailedAuthentications } from "./failed-authentications.ts";
import type { Principal } from "./grants.ts";
import type { AccessStore } from "./ports.ts";
import { sameDigest, tokenDigest, tokenId } from "./tokens.ts";

// A backstop in case a notification is lost (a dropped LISTEN connection).
export const CACHE_MS = 30_000;
const CACHE_LIMIT = 10_000;

export const SCHEME_REQUIRED =
  "the authorization header must use the Bearer scheme: `authorization: Bearer <token>`";

export interface Credentials {
  /** The `authorization` header as sent. */
  authorization?: string | undefined;
  /** The common name of a client certificate the TLS handshake verified. */
  certificateName?: string | undefined;
  /** The peer's address without its port, for limiting failed attempts. */
  peerAddress?: string | undefined;
}

/** How a caller proved who it is: enough to check later whether it still holds. */
export type Credential =
  | { kind: "token"; id: string; expiresAt: Date | undefined }
  | { kind: "certificate"; commonName: string; principal: string };

export interface Identity {
  principal: Principal;
  credential: Credential;
}

type Lookup = Awaited<ReturnType<AccessStore["findToken"]>>;

export class Authenticator {
  private readonly tokens = new Map<string, { at: number; lookup: Promise<Lookup> }>();
  private readonly principals = new Map<string, { at: number; lookup: Promise<Principal | undefined> }>();
  private readonly listeners: (() => void)[] = [];

  /**
   * `certificatePrincipals` maps client certificate common names to principal names; a
   * certificate whose name is not in it authenticates nobody (a principal is never matched by
   * its name alone: the first admin is called `admin`, and so may a certificate be).
   */
  constructor(
    private readonly store: AccessStore,
    private readonly certificatePrincipals: ReadonlyMap<string, string> = new Map(),
    private readonly failures = new FailedAuthentications(),
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts following changes; call once. */
  async start(): Promise<void> {
    await this.store.onChange(() => this.changed());
  }

  /** Something changed (here, or on another broker): forget the cache and tell the listeners. */
  changed(): void {
    this.tokens.clear();
    this.principals.clear();
    for (const listener of this.listeners) listener();
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * The caller's identity; UNAUTHENTICATED (never saying which part was wrong, nor echoing the
   * token), or RESOURCE_EXHAUSTED when its address or token failed too often lately. The limit is
   * checked before any lookup and the same way for every token, so it tells nothing about tokens.
   */
  async authenticate(credentials: Credentials): Promise<Identity> {
    const token = bearerToken(credentials.authorization);
    const digest = token === undefined ? undefined : tokenDigest(token);
    const keys = attemptKeys(credentials.peerAddress, digest && tokenId(digest));
    const wait = await this.failures.blockedFor(keys);
    if (wait > 0) {
      throw new MeshError(
        "resource_exhausted",
        `too many failed authentications from this address or with this token; try again in ${Math.ceil(wait / 1000)} s`,
      );
    }
    try {
      if (credentials.authorization !== undefined) {
        if (!digest) throw unauthenticated(SCHEME_REQUIRED);
        return await this.byToken(digest);
      }
      if (credentials.certificateName !== undefined)
        return await this.byCertificate(credentials.certificateName);
      throw unauthenticated("authentication required: send `authorization: Bearer <token>`");
    } catch (error) {
      if (error instanceof MeshError && error.code === "unauthenticated") await this.failures.record(keys);
      throw error;
    }
  }

  /** Whether a credential accepted earlier still holds: the principal as it is now, or UNAUTHENTICATED. */
  async recheck(credential: Credential): Promise<Identity> {
    if (credential.kind === "certificate") return this.byCertificate(credential.commonName);
    const found = await this.cached(this.tokens, credential.id, () => this.store.findToken(credential.id));
    if (!found) throw unauthenticated("the token is no longer valid (deleted with its principal)");
    return this.valid(found);
  }

  private async byToken(digest: Buffer): Promise<Identity> {
    const id = tokenId(digest);
    const found = await this.cached(this.tokens, id, () => this.store.findToken(id));
    if (!found || !sameDigest(found.token.digest, digest)) throw unauthenticated("the token is not valid");
    return this.valid(found);
  }

  private valid(found: NonNullable<Lookup>): Identity {
    if (found.token.revokedAt) throw unauthenticated("the token has been revoked");
    if (found.token.expiresAt && found.token.expiresAt.getTime() <= this.now()) {
      throw unauthenticated("the token has expired");
    }
    return {
      principal: found.principal,
      credential: { kind: "token", id: found.token.id, expiresAt: found.token.expiresAt },
    };
  }

  private async byCertificate(commonName: string): Promise<Identity> {
    const name = this.certificatePrincipals.get(commonName);
    if (name === undefined) {
      throw unauthenticated(
        `the client certificate's common name ${JSON.stringify(commonName)} is not mapped to a principal (PGMESH_CERT_PRINCIPALS)`,
      );
    }
    const principal = await this.cached(this.principals, name, () => this.store.findPrincipal(name));
    if (!principal) {
      throw unauthenticated(
        `the client certificate's common name ${JSON.stringify(commonName)} is mapped to principal ${name}, which does not exist`,
      );
    }
    return { principal, credential: { kind: "certificate", commonName, principal: name } };
  }

  private cached<T>(
    cache: Map<string, { at: number; lookup: Promise<T> }>,
    key: string,
    load: () => Promise<T>,
  ): Promise<T> {
    const hit = cache.get(key);
    if (hit && this.now() - hit.at < CACHE_MS) return hit.lookup;
    if (cache.size >= CACHE_LIMIT) cache.clear();
    const lookup = load();
    cache.set(key, { at: this.now(), lookup });
    // Misses and failures are not remembered: a token created a moment ago on another broker
    // must work here at once, and a database hiccup must not stick.
    lookup.then(
      (value) => value === undefined && cache.get(key)?.lookup === lookup && cache.delete(key),
      () => cache.get(key)?.lookup === lookup && cache.delete(key),
    );
    return lookup;
  }
}

/** The token of an `authorization: Bearer <token>` header; undefined for any other form. */
function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  return /^Bearer +(\S+) *$/i.exec(authorization)?.[1];
}

const unauthenticated = (message: string) => new MeshError("unauthenticated", message);
