// What a principal may do: grants of a permission on a name or a name prefix, and the `source`
// values it may publish as. Pure logic, shared by the interceptor and the admin use cases.
import { invalidArgument } from "../delivery/errors.ts";

/**
 * publish: publish to a topic. consume: stream from a subscription (and attach subscriptions to a
 * topic). read: get, list and stats. manage: create, change and delete topics, subscriptions and
 * schemas, dead letters and parked keys. admin: everything, including principals,
 * tokens and the audit log. Every grant on a name includes read on it.
 */
export const PERMISSIONS = ["publish", "consume", "read", "manage", "admin"] as const;
export type Permission = (typeof PERMISSIONS)[number];

export interface Grant {
  permission: Permission;
  /** A name, or a prefix ending in `*` (`orders.*`); `*` alone is every name. */
  pattern: string;
}

export interface Principal {
  name: string;
  grants: Grant[];
  /**
   * Patterns of the `source` values it may publish as: its own name unless granted more (`*` for a
   * relay or a gateway); empty: none.
   */
  sources: string[];
}

const PATTERN = /^(\*|[A-Za-z0-9._\-/:@]{1,200}\*?)$/;

/** Parses "publish:orders.*" (or "admin", which takes no resource). */
export function parseGrant(text: string): Grant {
  const colon = text.indexOf(":");
  const permission = (colon < 0 ? text : text.slice(0, colon)) as Permission;
  const pattern = colon < 0 ? "" : text.slice(colon + 1);
  if (!PERMISSIONS.includes(permission)) {
    throw invalidArgument(
      `grant ${JSON.stringify(text)}: the permission must be one of ${PERMISSIONS.join(", ")}`,
    );
  }
  if (permission === "admin") {
    if (pattern && pattern !== "*")
      throw invalidArgument(`grant ${JSON.stringify(text)}: admin takes no name`);
    return { permission, pattern: "*" };
  }
  checkPattern(`grant ${JSON.stringify(text)}`, pattern);
  return { permission, pattern };
}

export function grantToString(grant: Grant): string {
  return grant.permission === "admin" ? "admin" : `${grant.permission}:${grant.pattern}`;
}

export function checkPattern(what: string, pattern: string): void {
  if (!PATTERN.test(pattern)) {
    throw invalidArgument(
      `${what}: the name must be a name, a prefix ending in * (orders.*), or * for every name`,
    );
  }
}

export function matches(pattern: string, name: string): boolean {
  return pattern.endsWith("*") ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

/**
 * Whether the principal may do `permission` on the resource named `name`. Any grant on a name
 * includes reading it: a publisher may look up its topic's schema, a consumer its subscription.
 */
export function allows(principal: Principal, permission: Permission, name: string): boolean {
  return principal.grants.some(
    (g) =>
      g.permission === "admin" ||
      ((g.permission === permission || permission === "read") && matches(g.pattern, name)),
  );
}

export function mayPublishAs(principal: Principal, source: string): boolean {
  return principal.sources.some((p) => matches(p, source));
}
