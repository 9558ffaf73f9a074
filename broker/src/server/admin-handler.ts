// pgmesh.v1.AdminService on top of the delivery layer's Admin.
import type { ServerUnaryCall } from "@grpc/grpc-js";
import type { AdminServiceServer } from "@pgmesh/proto/pgmesh/v1/admin";
import type { Admin, PolicyInput } from "../delivery/admin.ts";
import { invalidArgument } from "../delivery/errors.ts";
import type { AccessMethod } from "./access-handler.ts";
import { readableBy } from "./auth/caller.ts";
import type { ConsoleMethod } from "./console-handlers.ts";
import {
  deadLetterToWire,
  policyFromWire,
  schemaToWire,
  seconds,
  selectionFromWire,
  startFromWire,
  subscriptionToWire,
  topicToWire,
  wholeSeconds,
} from "./convert.ts";
import { deadLetterWireBound, ENVELOPE_BOUND } from "./message-size.ts";
import type { ErrorLogger } from "./status.ts";
import { type RequestObserver, unary } from "./unary.ts";

// The fields UpdateSubscription may change, as update_mask paths (both spellings are accepted).
const UPDATABLE: Record<string, keyof PolicyInput> = {
  ack_deadline: "ackDeadlineSeconds",
  ackDeadline: "ackDeadlineSeconds",
  max_delivery_attempts: "maxDeliveryAttempts",
  maxDeliveryAttempts: "maxDeliveryAttempts",
  dead_lettering: "deadLettering",
  deadLettering: "deadLettering",
  retry_policy: "retryPolicy",
  retryPolicy: "retryPolicy",
  acked_retention: "ackedRetentionSeconds",
  ackedRetention: "ackedRetentionSeconds",
};
const FIXED_AT_CREATION = new Set(["ordering", "filter", "topic", "name"]);

/** The topic, subscription and dead-letter RPCs; access control's are in access-handler.ts. */
export function adminHandlers(
  admin: Admin,
  log: ErrorLogger,
  observe: RequestObserver,
  /** The largest response to send (dead-letter pages are cut under it). */
  maxMessageBytes: number,
): Omit<AdminServiceServer, AccessMethod | ConsoleMethod> {
  const rpc = <Req, Res>(
    method: string,
    handle: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  ) => unary(method, log, handle, observe);
  return {
    createTopic: rpc("CreateTopic", async (req) => ({
      topic: topicToWire(await admin.createTopic(req.name, wholeSeconds("retention", req.retention))),
    })),
    updateTopic: rpc("UpdateTopic", async (req) => ({
      topic: topicToWire(await admin.updateTopic(req.name, wholeSeconds("retention", req.retention))),
    })),
    getTopic: rpc("GetTopic", async (req) => ({ topic: topicToWire(await admin.getTopic(req.name)) })),
    listTopics: rpc("ListTopics", async (req, call) => {
      const page = await admin.listTopics(req.pageSize, req.pageToken, readableBy(call.metadata));
      return { topics: page.items.map(topicToWire), nextPageToken: page.nextPageToken };
    }),
    setTopicSchema: rpc("SetTopicSchema", async (req) => {
      const schema = await admin.setTopicSchema(req.topic, {
        fileDescriptorSet: req.schema?.fileDescriptorSet ?? new Uint8Array(),
        messageTypes: req.schema?.messageTypes ?? [],
      });
      return { schema: schema ? schemaToWire(schema) : undefined };
    }),
    getTopicSchema: rpc("GetTopicSchema", async (req) => {
      const schema = await admin.getTopicSchema(req.topic);
      return { schema: schema ? schemaToWire(schema) : undefined };
    }),
    deleteTopic: rpc("DeleteTopic", async (req) => {
      await admin.deleteTopic(req.name);
      return {};
    }),
    createSubscription: rpc("CreateSubscription", async (req) => {
      const sub = await admin.createSubscription({
        name: req.name,
        topic: req.topic,
        ordering: req.ordering,
        filter: req.filter,
        start: startFromWire(req.start),
        ...policyFromWire(req),
      });
      return { subscription: subscriptionToWire(sub) };
    }),
    seekSubscription: rpc("SeekSubscription", async (req) => {
      const result = await admin.seekSubscription(req.subscription, startFromWire(req.to));
      return { position: Number(result.position), droppedDeliveries: result.dropped };
    }),
    getSubscription: rpc("GetSubscription", async (req) => ({
      subscription: subscriptionToWire(await admin.getSubscription(req.name)),
    })),
    updateSubscription: rpc("UpdateSubscription", async (req) => {
      if (!req.subscription) throw invalidArgument("subscription is required (with its name)");
      const paths = req.updateMask ?? [];
      if (paths.length === 0) {
        throw invalidArgument(
          `update_mask must name the fields to change: ${Object.keys(UPDATABLE)
            .filter((p) => p.includes("_"))
            .join(", ")}`,
        );
      }
      const given = policyFromWire(req.subscription);
      const changes: PolicyInput = {};
      for (const path of paths) {
        const field = UPDATABLE[path];
        if (!field) {
          const why = FIXED_AT_CREATION.has(path) ? " (it is fixed when the subscription is created)" : "";
          throw invalidArgument(`update_mask path ${JSON.stringify(path)} cannot be updated${why}`);
        }
        Object.assign(changes, { [field]: given[field] });
        if (given[field] === undefined && field !== "retryPolicy") {
          throw invalidArgument(
            `update_mask names ${path}, but the subscription in the request does not set it`,
          );
        }
      }
      return {
        subscription: subscriptionToWire(await admin.updateSubscription(req.subscription.name, changes)),
      };
    }),
    getSubscriptionStats: rpc("GetSubscriptionStats", async (req) => {
      const stats = await admin.stats(req.name);
      return {
        backlog: stats.backlog,
        inFlight: stats.inFlight,
        oldestUnackedAge: seconds(stats.oldestUnackedAgeSeconds),
        deadLetters: stats.deadLetters,
        parkedKeys: stats.parkedKeys,
        cursorLag: stats.cursorLag,
        cursorLagAge: seconds(stats.cursorLagAgeSeconds),
        cursorPosition: Number(stats.cursorPosition),
      };
    }),
    listSubscriptions: rpc("ListSubscriptions", async (req, call) => {
      const page = await admin.listSubscriptions(
        req.topic,
        req.pageSize,
        req.pageToken,
        readableBy(call.metadata),
      );
      return { subscriptions: page.items.map(subscriptionToWire), nextPageToken: page.nextPageToken };
    }),
    deleteSubscription: rpc("DeleteSubscription", async (req) => {
      await admin.deleteSubscription(req.name);
      return {};
    }),
    listDeadLetters: rpc("ListDeadLetters", async (req) => {
      const page = await admin.listDeadLetters(
        selectionFromWire([], req.filter),
        req.pageSize,
        req.pageToken,
        {
          maxBytes: maxMessageBytes - ENVELOPE_BOUND,
          bytesOf: deadLetterWireBound,
        },
      );
      return { deadLetters: page.items.map(deadLetterToWire), nextPageToken: page.nextPageToken };
    }),
    redriveDeadLetters: rpc("RedriveDeadLetters", async (req) => ({
      redriven: await admin.redriveDeadLetters(selectionFromWire(req.ids, req.filter)),
    })),
    listParkedKeys: rpc("ListParkedKeys", async (req) => ({
      parkedKeys: (await admin.listParkedKeys(req.subscription)).map((p) => ({
        orderingKey: p.orderingKey,
        deadLetterId: p.deadLetterId,
        waiting: p.waiting,
      })),
    })),
    releaseParkedKeys: rpc("ReleaseParkedKeys", async (req) => ({
      released: await admin.releaseParkedKeys(req.subscription, req.orderingKeys),
    })),
    purgeDeadLetters: rpc("PurgeDeadLetters", async (req) => ({
      purged: await admin.purgeDeadLetters(selectionFromWire(req.ids, req.filter)),
    })),
  };
}
