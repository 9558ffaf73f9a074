import { describe, expect, it } from "vitest";
import { allows, mayPublishAs, type Principal, parseGrant } from "../../src/security/grants.ts";

const principal = (grants: string[], sources: string[] = []): Principal => ({
  name: "p",
  grants: grants.map(parseGrant),
  sources,
});

describe("grants", () => {
  it("match a name exactly, or a prefix ending in *", () => {
    const p = principal(["publish:orders.*", "consume:billing"]);
    expect(allows(p, "publish", "orders.eu")).toBe(true);
    expect(allows(p, "publish", "orders")).toBe(false);
    expect(allows(p, "publish", "ordersx")).toBe(false);
    expect(allows(p, "consume", "billing")).toBe(true);
    expect(allows(p, "consume", "billing.eu")).toBe(false);
    expect(allows(p, "publish", "billing")).toBe(false);
  });

  it("any grant on a name includes read; only admin includes everything", () => {
    const p = principal(["consume:billing", "manage:orders.*"]);
    expect(allows(p, "read", "billing")).toBe(true);
    expect(allows(p, "read", "orders.eu")).toBe(true);
    expect(allows(p, "manage", "billing")).toBe(false);
    expect(allows(p, "publish", "orders.eu")).toBe(false);
    const root = principal(["admin"]);
    for (const permission of ["publish", "consume", "read", "manage", "admin"] as const) {
      expect(allows(root, permission, "anything")).toBe(true);
    }
  });

  it("bind the sources a principal may publish as; none bound means none, * means any", () => {
    expect(mayPublishAs(principal(["publish:*"]), "whatever")).toBe(false);
    expect(mayPublishAs(principal(["publish:*"], ["*"]), "whatever")).toBe(true);
    const bound = principal(["publish:*"], ["orders-service", "batch-*"]);
    expect(mayPublishAs(bound, "orders-service")).toBe(true);
    expect(mayPublishAs(bound, "batch-nightly")).toBe(true);
    expect(mayPublishAs(bound, "payments-service")).toBe(false);
  });

  it("refuse unknown permissions and malformed names, naming the grant", () => {
    expect(() => parseGrant("write:orders")).toThrow(/grant "write:orders": the permission must be one of/);
    expect(() => parseGrant("publish:")).toThrow(/grant "publish:": the name must be/);
    expect(() => parseGrant("publish:or*ders")).toThrow(/the name must be/);
    expect(() => parseGrant("admin:orders")).toThrow(/admin takes no name/);
    expect(parseGrant("read:*")).toEqual({ permission: "read", pattern: "*" });
  });
});
