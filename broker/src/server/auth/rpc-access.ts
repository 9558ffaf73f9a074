// Every RPC the broker serves and what a caller needs to make it. The interceptor (interceptor.ts)
// looks each call up here, and the server refuses to start if a method it serves has no entry, so
// a new RPC cannot be forgotten.
import { AdminServiceService } from "@pgmesh/proto/pgmesh/v1/admin";
import type { PublishRequest } from "@pgmesh/proto/pgmesh/v1/publisher";
import { PublisherServiceService } from "@pgmesh/proto/pgmesh/v1/publisher";
import type { SubscribeRequest } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { SubscriberServiceService } from "@pgmesh/proto/pgmesh/v1/subscriber";
import type { Permission } from "../../security/grants.ts";

/** One permission the request needs, on a named resource. */
export interface Need {
  permission: Permission;
  kind: "topic" | "subscription" | "principal" | "token" | "audit log";
  name: string;
}

export type RpcAccess =
  /** Anyone, even unauthenticated (health checks, for load balancers). */
  | { kind: "public" }
  /** Any authenticated caller (server reflection: the API's shape, nothing of its data). */
  | { kind: "authenticated" }
  | {
      kind: "checked";
      /** What each request message needs; [] is "any authenticated caller". */
      needs: (request: never) => Need[];
      /** The `source` values a Publish request would publish as. */
      sources?: (request: never) => string[];
      /** Written to the audit log: the admin actions that change something. */
      audited: boolean;
    };

const topic = (permission: Permission, name: string): Need => ({ permission, kind: "topic", name });
const subscription = (permission: Permission, name: string): Need => ({
  permission,
  kind: "subscription",
  name,
});
const admin = (kind: Need["kind"], name: string): Need => ({ permission: "admin", kind, name });

function checked<Req>(
  needs: (request: Req) => Need[],
  options: { audited: boolean; sources?: (request: Req) => string[] },
): RpcAccess {
  return { kind: "checked", needs, sources: options.sources, audited: options.audited } as RpcAccess;
}

const change = { audited: true };
const look = { audited: false };

type Named = { name: string };
type OnTopic = { topic: string };
type OnSubscription = { subscription: string };
type DeadLetters = { filter?: { subscription: string } | undefined };

const A = AdminServiceService;

export const RPC_ACCESS: Record<string, RpcAccess> = {
  [PublisherServiceService.publish.path]: checked((r: PublishRequest) => [topic("publish", r.topic)], {
    audited: false,
    sources: (r: PublishRequest) => r.events.map((e) => e.source),
  }),
  // Checked on each message: only `open` names a subscription.
  [SubscriberServiceService.subscribe.path]: checked(
    (r: SubscribeRequest) =>
      r.request?.$case === "open" ? [subscription("consume", r.request.value.subscription)] : [],
    look,
  ),

  [A.createTopic.path]: checked((r: Named) => [topic("manage", r.name)], change),
  [A.getTopic.path]: checked((r: Named) => [topic("read", r.name)], look),
  // Lists show only what the caller may read: the handler filters before paging (auth/caller.ts).
  [A.listTopics.path]: checked(() => [], look),
  [A.updateTopic.path]: checked((r: Named) => [topic("manage", r.name)], change),
  [A.deleteTopic.path]: checked((r: Named) => [topic("manage", r.name)], change),
  [A.setTopicSchema.path]: checked((r: OnTopic) => [topic("manage", r.topic)], change),
  [A.getTopicSchema.path]: checked((r: OnTopic) => [topic("read", r.topic)], look),
  // Attaching a subscription to a topic lets its holder read the topic's events: it takes consume
  // on the topic as well as manage on the new subscription.
  [A.createSubscription.path]: checked(
    (r: Named & OnTopic) => [subscription("manage", r.name), topic("consume", r.topic)],
    change,
  ),
  [A.getSubscription.path]: checked((r: Named) => [subscription("read", r.name)], look),
  [A.updateSubscription.path]: checked(
    (r: { subscription?: Named | undefined }) => [subscription("manage", r.subscription?.name ?? "")],
    change,
  ),
  [A.getSubscriptionStats.path]: checked((r: Named) => [subscription("read", r.name)], look),
  // Lists show only what the caller may read: the handler filters before paging (auth/caller.ts).
  [A.listSubscriptions.path]: checked(() => [], look),
  [A.deleteSubscription.path]: checked((r: Named) => [subscription("manage", r.name)], change),
  [A.seekSubscription.path]: checked(
    (r: { subscription: string }) => [subscription("manage", r.subscription)],
    change,
  ),
  // Dead letters hold event payloads: listing them is managing them, not reading metadata.
  [A.listDeadLetters.path]: checked(
    (r: DeadLetters) => [subscription("manage", r.filter?.subscription ?? "")],
    look,
  ),
  [A.redriveDeadLetters.path]: checked(
    (r: DeadLetters) => [subscription("manage", r.filter?.subscription ?? "")],
    change,
  ),
  [A.purgeDeadLetters.path]: checked(
    (r: DeadLetters) => [subscription("manage", r.filter?.subscription ?? "")],
    change,
  ),
  [A.listParkedKeys.path]: checked((r: OnSubscription) => [subscription("read", r.subscription)], look),
  [A.releaseParkedKeys.path]: checked(
    (r: OnSubscription) => [subscription("manage", r.subscription)],
    change,
  ),
  // Event payloads, like a subscription's: consume on the topic (which may attach one anyway).
  [A.listTopicEvents.path]: checked((r: OnTopic) => [topic("consume", r.topic)], look),
  // Summaries show only what the caller may read: the handler filters before paging.
  [A.listTopicSummaries.path]: checked(() => [], look),
  [A.listSubscriptionSummaries.path]: checked(() => [], look),
  [A.listConsumers.path]: checked((r: OnSubscription) => [subscription("read", r.subscription)], look),

  [A.createPrincipal.path]: checked(
    (r: { principal?: Named | undefined }) => [admin("principal", r.principal?.name ?? "")],
    change,
  ),
  [A.listPrincipals.path]: checked(() => [admin("principal", "*")], look),
  [A.updatePrincipal.path]: checked(
    (r: { principal?: Named | undefined }) => [admin("principal", r.principal?.name ?? "")],
    change,
  ),
  [A.deletePrincipal.path]: checked((r: Named) => [admin("principal", r.name)], change),
  [A.createToken.path]: checked((r: { principal: string }) => [admin("principal", r.principal)], change),
  [A.listTokens.path]: checked((r: { principal: string }) => [admin("principal", r.principal || "*")], look),
  [A.revokeToken.path]: checked((r: { id: string }) => [admin("token", r.id)], change),
  [A.listAuditLog.path]: checked(() => [admin("audit log", "*")], look),
};

// The standard services, by service name.
const SERVICE_ACCESS: Record<string, RpcAccess> = {
  "grpc.health.v1.Health": { kind: "public" },
  "grpc.reflection.v1.ServerReflection": { kind: "authenticated" },
  "grpc.reflection.v1alpha.ServerReflection": { kind: "authenticated" },
};

/** The access rule for a method path such as /pgmesh.v1.AdminService/CreateTopic. */
export function accessFor(path: string): RpcAccess | undefined {
  return RPC_ACCESS[path] ?? SERVICE_ACCESS[path.slice(1, path.lastIndexOf("/"))];
}

/** The resource an audit row names, e.g. `subscription orders.billing`. */
export function describeNeeds(needs: Need[]): string {
  return needs.map((n) => `${n.kind} ${n.name}`).join(", ");
}
