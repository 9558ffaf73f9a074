// Every RPC the broker serves has an access rule, and every pgmesh RPC is checked (none is open).
import { AdminServiceService } from "@pgmesh/proto/pgmesh/v1/admin";
import { PublisherServiceService } from "@pgmesh/proto/pgmesh/v1/publisher";
import { SubscriberServiceService } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { describe, expect, it } from "vitest";
import { accessFor, RPC_ACCESS } from "../../src/server/auth/rpc-access.ts";

const services = [PublisherServiceService, SubscriberServiceService, AdminServiceService];
const paths = services.flatMap((service) => Object.values(service).map((method) => method.path));

describe("the RPC access table", () => {
  it("has a checked rule for every method of every pgmesh service, and nothing else", () => {
    for (const path of paths) expect(accessFor(path)?.kind, path).toBe("checked");
    expect(Object.keys(RPC_ACCESS).sort()).toEqual([...paths].sort());
  });

  it("leaves only health checks open, and reflection to any authenticated caller", () => {
    expect(accessFor("/grpc.health.v1.Health/Check")?.kind).toBe("public");
    expect(accessFor("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")?.kind).toBe(
      "authenticated",
    );
    expect(accessFor("/pgmesh.v1.AdminService/Unknown")).toBeUndefined();
  });

  it("names the resource each request is about", () => {
    const rule = RPC_ACCESS[AdminServiceService.createSubscription.path];
    if (rule?.kind !== "checked") throw new Error("no rule");
    expect(rule.needs({ name: "billing", topic: "orders" } as never)).toEqual([
      { permission: "manage", kind: "subscription", name: "billing" },
      { permission: "consume", kind: "topic", name: "orders" },
    ]);
  });
});
