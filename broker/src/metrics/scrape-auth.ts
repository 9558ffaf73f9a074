// Who may scrape /metrics: Prometheus sends `authorization: Bearer <token>` (its `authorization`
// scrape setting) or `authorization: Basic <user:password>` (`basic_auth`). Both are compared as
// SHA-256 digests with timingSafeEqual, so neither the length nor the first wrong character of a
// guess changes how long the answer takes; for basic authentication the user and the password are
// both compared whatever the first result.
import { createHash, timingSafeEqual } from "node:crypto";

export interface ScrapeCredentials {
  /** Bearer token. */
  token: string | undefined;
  basic: { user: string; password: string } | undefined;
}

export interface ScrapeAuth {
  /** Whether the request's `authorization` header carries a configured credential. */
  allows(authorization: string | undefined): boolean;
  /** The WWW-Authenticate challenge of a 401: Basic when basic authentication is configured. */
  challenge: string;
}

export function scrapeAuth(credentials: ScrapeCredentials): ScrapeAuth {
  const token = credentials.token === undefined ? undefined : digest(credentials.token);
  const user = credentials.basic && digest(credentials.basic.user);
  const password = credentials.basic && digest(credentials.basic.password);
  return {
    challenge: `${credentials.basic ? "Basic" : "Bearer"} realm="pgmesh metrics"`,
    allows(authorization) {
      const [scheme, value] = (authorization ?? "").trim().split(/ +/, 2);
      if (!scheme || !value) return false;
      if (scheme.toLowerCase() === "bearer") return token !== undefined && same(token, digest(value));
      if (scheme.toLowerCase() !== "basic" || !user || !password) return false;
      const decoded = Buffer.from(value, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon < 0) return false;
      const userMatches = same(user, digest(decoded.slice(0, colon)));
      const passwordMatches = same(password, digest(decoded.slice(colon + 1)));
      return userMatches && passwordMatches;
    },
  };
}

const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();
const same = (a: Buffer, b: Buffer) => timingSafeEqual(a, b);
