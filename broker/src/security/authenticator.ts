// Who is calling: a bearer token, or (under mutual TLS) the subject of a verified client
// certificate, resolved to a principal. Lookups are cached in memory for CACHE_MS so the hot path
// stays off the database; any change to principals or tokens (on any broker: the store notifies
// them all) empties the cache, so a revoked token is refused everywhere within moments.
import { MeshError } from "../delivery/errors.ts";
import type { Principal } from "./grants.ts";
import type { AccessStore } from "./ports.ts";
import { sameDigest, tokenDigest, tokenId } from "./tokens.ts";

// A backstop in case a notification is lost (a dropped LISTEN connection).
const CACHE_MS = 30_000;
const CACHE_LIMIT = 10_000;

export interface Credentials {
  /** The bearer token from the `authorization` header. */
  token?: string | undefined;
  /** The common name of a client certificate the TLS handshake verified. */
  certificateName?: string | undefined;
}

type Lookup = Awaited<ReturnType<AccessStore["findToken"]>>;

export class Authenticator {
  private readonly tokens = new Map<string, { at: number; lookup: Promise<Lookup> }>();
  private readonly principals = new Map<string, { at: number; lookup: Promise<Principal | undefined> }>();

  constructor(
    private readonly store: AccessStore,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts following changes; call once. */
  async start(): Promise<void> {
    await this.store.onChange(() => this.forget());
  }

  forget(): void {
    this.tokens.clear();
    this.principals.clear();
  }

  /** The caller's principal, or UNAUTHENTICATED (never saying which part was wrong, nor echoing the token). */
  async authenticate(credentials: Credentials): Promise<Principal> {
    if (credentials.token !== undefined) return this.byToken(credentials.token);
    if (credentials.certificateName !== undefined) {
      const principal = await this.cached(this.principals, credentials.certificateName, () =>
        this.store.findPrincipal(credentials.certificateName as string),
      );
      if (principal) return principal;
      throw unauthenticated(
        `no principal is named after the client certificate's common name ${JSON.stringify(credentials.certificateName)}`,
      );
    }
    throw unauthenticated("authentication required: send `authorization: Bearer <token>`");
  }

  private async byToken(token: string): Promise<Principal> {
    const digest = tokenDigest(token);
    const found = await this.cached(this.tokens, tokenId(digest), () =>
      this.store.findToken(tokenId(digest)),
    );
    if (!found || !sameDigest(found.token.digest, digest)) throw unauthenticated("the token is not valid");
    if (found.token.revokedAt) throw unauthenticated("the token has been revoked");
    if (found.token.expiresAt && found.token.expiresAt.getTime() <= this.now()) {
      throw unauthenticated("the token has expired");
    }
    return found.principal;
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

const unauthenticated = (message: string) => new MeshError("unauthenticated", message);
