// The authenticator's decisions and its cache, on an in-memory store (the Postgres store and the
// cross-broker notification are tested in integration/auth.test.ts).
import { describe, expect, it } from "vitest";
import { Authenticator, SCHEME_REQUIRED } from "../../src/security/authenticator.ts";
import { FailedAuthentications } from "../../src/security/failed-authentications.ts";
import type { Principal } from "../../src/security/grants.ts";
import type { AccessStore, StoredToken } from "../../src/security/ports.ts";
import { generateToken, tokenDigest, tokenId } from "../../src/security/tokens.ts";

const principal: Principal = {
  name: "svc",
  grants: [{ permission: "read", pattern: "*" }],
  sources: ["svc"],
};

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
    expect((await auth.authenticate(bearer(token))).principal).toBe(principal);
    expect((await auth.authenticate(bearer(token))).principal).toBe(principal);
    expect(s.lookups()).toBe(1);
    s.change();
    await auth.authenticate(bearer(token));
    expect(s.lookups()).toBe(2);
  });

  it("refuses a token whose id matches but whose digest does not", async () => {
    const token = generateToken();
    const impostor = stored(token, { digest: tokenDigest(generateToken()) });
    const auth = new Authenticator(store([impostor]).fake);
    await expect(auth.authenticate(bearer(token))).rejects.toThrow("the token is not valid");
  });

  it("refuses expired and revoked tokens, and no credentials at all", async () => {
    const now = 1_000_000;
    const expired = generateToken();
    const revoked = generateToken();
    const s = store([
      stored(expired, { expiresAt: new Date(now) }),
      stored(revoked, { revokedAt: new Date(now - 1) }),
    ]);
    const auth = new Authenticator(s.fake, new Map(), new FailedAuthentications(), () => now);
    await expect(auth.authenticate(bearer(expired))).rejects.toThrow("the token has expired");
    await expect(auth.authenticate(bearer(revoked))).rejects.toThrow("the token has been revoked");
    await expect(auth.authenticate({})).rejects.toMatchObject({ code: "unauthenticated" });
  });

  it("does not remember misses: a token created on another broker works at once", async () => {
    const token = generateToken();
    const tokens: StoredToken[] = [];
    const auth = new Authenticator(store(tokens).fake);
    await expect(auth.authenticate(bearer(token))).rejects.toThrow("the token is not valid");
    tokens.push(stored(token));
    expect((await auth.authenticate(bearer(token))).principal).toBe(principal);
  });

  it("finds the principal a client certificate's common name is mapped to, and no other", async () => {
    const auth = new Authenticator(store([]).fake, new Map([["svc.internal", "svc"]]));
    expect((await auth.authenticate({ certificateName: "svc.internal" })).principal).toBe(principal);
    // A certificate named like a principal is not that principal unless the operator says so.
    await expect(auth.authenticate({ certificateName: "svc" })).rejects.toThrow(
      /common name "svc" is not mapped to a principal/,
    );
  });

  it("requires the Bearer scheme", async () => {
    const token = generateToken();
    const auth = new Authenticator(store([stored(token)]).fake);
    await expect(auth.authenticate({ authorization: token })).rejects.toThrow(SCHEME_REQUIRED);
    await expect(auth.authenticate({ authorization: `Basic ${token}` })).rejects.toThrow(SCHEME_REQUIRED);
    expect((await auth.authenticate({ authorization: `bearer ${token}` })).principal).toBe(principal);
  });

  it("limits failures per address and per token, not a valid token from another address", async () => {
    const token = generateToken();
    const s = store([stored(token)]);
    const auth = new Authenticator(
      s.fake,
      new Map(),
      new FailedAuthentications({ failures: 3, windowSeconds: 60 }),
    );
    const wrong = { authorization: "Bearer pgm_wrong", peerAddress: "10.0.0.1" };
    for (let i = 0; i < 3; i++) await expect(auth.authenticate(wrong)).rejects.toThrow("not valid");
    const lookups = s.lookups();
    await expect(auth.authenticate(wrong)).rejects.toMatchObject({ code: "resource_exhausted" });
    // Refused before any lookup, even with a valid token from that address.
    await expect(auth.authenticate({ ...bearer(token), peerAddress: "10.0.0.1" })).rejects.toMatchObject({
      code: "resource_exhausted",
    });
    expect(s.lookups()).toBe(lookups);
    expect((await auth.authenticate({ ...bearer(token), peerAddress: "10.0.0.2" })).principal).toBe(
      principal,
    );
    // The same wrong token from other addresses runs up its own count.
    await expect(auth.authenticate({ ...wrong, peerAddress: "10.0.0.3" })).rejects.toMatchObject({
      code: "resource_exhausted",
    });
  });
});

function bearer(token: string) {
  return { authorization: `Bearer ${token}` };
}
