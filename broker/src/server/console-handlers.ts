// The AdminService RPCs the web console needed that the CLI did not: a topic's stored events, the
// overview's summaries (from the gauge refresh, in memory) and a subscription's open streams here.
// They are served over gRPC like every other RPC, and checked by the same rules (auth/rpc-access.ts).
import type { ServerUnaryCall } from "@grpc/grpc-js";
import type { AdminServiceServer } from "@pgmesh/proto/pgmesh/v1/admin";
import type { Admin } from "../delivery/admin.ts";
import type { Consumer } from "../delivery/consumer.ts";
import type { OverviewSnapshot, TrafficCounters } from "../delivery/overview.ts";
import { summaryPage } from "../delivery/overview.ts";
import { readableBy } from "./auth/caller.ts";
import { eventToWire, seconds, startFromWire } from "./convert.ts";
import type { ErrorLogger } from "./status.ts";
import { type RequestObserver, unary } from "./unary.ts";

export type ConsoleMethod =
  | "listTopicEvents"
  | "listTopicSummaries"
  | "listSubscriptionSummaries"
  | "listConsumers";

export interface ConsoleSources {
  /** The last gauge refresh (metrics/gauges.ts). */
  overview(): OverviewSnapshot;
  traffic(): Promise<TrafficCounters>;
  /** This broker's open streams on a subscription. */
  consumers(subscription: string): Consumer[];
}

export function consoleHandlers(
  admin: Admin,
  sources: ConsoleSources,
  log: ErrorLogger,
  observe: RequestObserver,
): Pick<AdminServiceServer, ConsoleMethod> {
  const rpc = <Req, Res>(
    method: string,
    handle: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  ) => unary(method, log, handle, observe);
  return {
    listTopicEvents: rpc("ListTopicEvents", async (req) => {
      const page = await admin.listTopicEvents(
        req.topic,
        startFromWire(req.start),
        req.pageSize,
        req.pageToken,
      );
      return {
        events: page.items.map((event) => ({ position: Number(event.seq), event: eventToWire(event) })),
        nextPageToken: page.nextPageToken,
      };
    }),
    listTopicSummaries: rpc("ListTopicSummaries", async (req, call) => {
      const snapshot = sources.overview();
      const traffic = await sources.traffic();
      const subscriptions = new Map<string, number>();
      for (const s of snapshot.subscriptions)
        subscriptions.set(s.topic, (subscriptions.get(s.topic) ?? 0) + 1);
      const page = summaryPage(
        snapshot.topics,
        (t) => [t.name],
        (t) => t.name,
        readableBy(call.metadata),
        req,
      );
      return {
        topics: page.items.map((t) => ({
          name: t.name,
          retention: seconds(t.retentionSeconds),
          subscriptions: subscriptions.get(t.name) ?? 0,
          published: traffic.published.get(t.name) ?? 0,
        })),
        nextPageToken: page.nextPageToken,
        totalSize: page.totalSize,
        refreshTime: snapshot.refreshedAt,
      };
    }),
    listSubscriptionSummaries: rpc("ListSubscriptionSummaries", async (req, call) => {
      const snapshot = sources.overview();
      const traffic = await sources.traffic();
      const page = summaryPage(
        snapshot.subscriptions,
        (s) => [s.subscription, s.topic],
        (s) => s.subscription,
        readableBy(call.metadata),
        req,
      );
      return {
        subscriptions: page.items.map((s) => ({
          name: s.subscription,
          topic: s.topic,
          backlog: s.backlog,
          inFlight: s.inFlight,
          oldestUnackedAge: seconds(s.oldestAgeSeconds),
          deadLetters: s.deadLetters,
          cursorLag: s.cursorLag,
          delivered: traffic.delivered.get(s.subscription) ?? 0,
          acked: traffic.acked.get(s.subscription) ?? 0,
        })),
        nextPageToken: page.nextPageToken,
        totalSize: page.totalSize,
        refreshTime: snapshot.refreshedAt,
      };
    }),
    listConsumers: rpc("ListConsumers", async (req) => {
      const subscription = await admin.getSubscription(req.subscription);
      return {
        consumers: sources.consumers(subscription.name).map((c) => ({
          name: c.name,
          connectTime: c.openedAt,
          inFlight: c.outstanding,
          maxOutstandingMessages: c.maxOutstandingMessages,
        })),
      };
    }),
  };
}
