// The authenticator's decisions and its cache, on an in-memory store (the Postgres store and the
// cross-broker notification are tested in integration/auth.test.ts).
import { describe, expect, it } from "vitest";
import { Authenticator } from "../../src/security/authenticator.ts";
import type { Principal } from "../../src/security/grants.ts";
import type { AccessStore, StoredToken } from "../../src/security/ports.ts";
import { generateToken, tokenDigest, tokenId } from "../../src/security/tokens.ts";

const principal: Principal = { name: "svc", grants: [{ permission: "read", pattern: "*" }], sources: [] };

function store(tokens: StoredToken[]) {
  let lookups = 0;
  let changed: () => void = () => {};
  const fake = {
    findToken: async (id: string) => {
      lookups++;
      const token = tokens.find((t) => t.id === id);
      return token && { token, principal };
    },
    findPrincipal: async (name: string) => (name === principal.name ? principal : undefined),
    onChange: async (listener: () => void) => {
      changed = listener;
    },
  } as unknown as AccessStore;
  return { fake, lookups: () => lookups, change: () => changed() };
}

function stored(token: string, extra: Partial<StoredToken> = {}): StoredToken {
  const digest = tokenDigest(token);
  return {
    id: tokenId(digest),
    digest,
    principal: "svc",
    description: "",
    createdAt: new Date(0),
    expiresAt: undefined,
    revokedAt: undefined,
    ...extra,
  };
}

describe("Authenticator", () => {
  it("accepts a known token and caches it until told that something changed", async () => {
    const token = generateToken();
    const s = store([stored(token)]);
    const auth = new Authenticator(s.fake);
    await auth.start();
    expect(await auth.authenticate({ token })).toBe(principal);
    expect(await auth.authenticate({ token })).toBe(principal);
    expect(s.lookups()).toBe(1);
    s.change();
    await auth.authenticate({ token });
    expect(s.lookups()).toBe(2);
  });

  it("refuses a token whose id matches but whose digest does not", async () => {
    const token = generateToken();
    const impostor = stored(token, { digest: tokenDigest(generateToken()) });
    const auth = new Authenticator(store([impostor]).fake);
    await expect(auth.authenticate({ token })).rejects.toThrow("the token is not valid");
  });

  it("refuses expired and revoked tokens, and no credentials at all", async () => {
    const now = 1_000_000;
    const expired = generateToken();
    const revoked = generateToken();
    const s = store([
      stored(expired, { expiresAt: new Date(now) }),
      stored(revoked, { revokedAt: new Date(now - 1) }),
    ]);
    const auth = new Authenticator(s.fake, () => now);
    await expect(auth.authenticate({ token: expired })).rejects.toThrow("the token has expired");
    await expect(auth.authenticate({ token: revoked })).rejects.toThrow("the token has been revoked");
    await expect(auth.authenticate({})).rejects.toMatchObject({ code: "unauthenticated" });
  });

  it("does not remember misses: a token created on another broker works at once", async () => {
    const token = generateToken();
    const tokens: StoredToken[] = [];
    const auth = new Authenticator(store(tokens).fake);
    await expect(auth.authenticate({ token })).rejects.toThrow("the token is not valid");
    tokens.push(stored(token));
    expect(await auth.authenticate({ token })).toBe(principal);
  });

  it("finds the principal named by a client certificate", async () => {
    const auth = new Authenticator(store([]).fake);
    expect(await auth.authenticate({ certificateName: "svc" })).toBe(principal);
    await expect(auth.authenticate({ certificateName: "other" })).rejects.toThrow(/common name "other"/);
  });
});
