// pgmesh.v1.AdminService on top of the delivery layer's Admin.
import type { AdminServiceServer } from "@pgmesh/sdk/gen/pgmesh/v1/admin";
import type { Admin, PolicyInput } from "../delivery/admin.ts";
import { invalidArgument } from "../delivery/errors.ts";
import {
  deadLetterToWire,
  policyFromWire,
  schemaToWire,
  seconds,
  selectionFromWire,
  subscriptionToWire,
  topicToWire,
} from "./convert.ts";
import type { ErrorLogger } from "./status.ts";
import { unary } from "./unary.ts";

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

export function adminHandlers(admin: Admin, log: ErrorLogger): AdminServiceServer {
  return {
    createTopic: unary("CreateTopic", log, async (req) => ({
      topic: topicToWire(await admin.createTopic(req.name)),
    })),
    getTopic: unary("GetTopic", log, async (req) => ({ topic: topicToWire(await admin.getTopic(req.name)) })),
    listTopics: unary("ListTopics", log, async (req) => {
      const page = await admin.listTopics(req.pageSize, req.pageToken);
      return { topics: page.items.map(topicToWire), nextPageToken: page.nextPageToken };
    }),
    setTopicSchema: unary("SetTopicSchema", log, async (req) => {
      const schema = await admin.setTopicSchema(req.topic, {
        fileDescriptorSet: req.schema?.fileDescriptorSet ?? new Uint8Array(),
        messageTypes: req.schema?.messageTypes ?? [],
      });
      return { schema: schema ? schemaToWire(schema) : undefined };
    }),
    getTopicSchema: unary("GetTopicSchema", log, async (req) => {
      const schema = await admin.getTopicSchema(req.topic);
      return { schema: schema ? schemaToWire(schema) : undefined };
    }),
    deleteTopic: unary("DeleteTopic", log, async (req) => {
      await admin.deleteTopic(req.name);
      return {};
    }),
    createSubscription: unary("CreateSubscription", log, async (req) => {
      const sub = await admin.createSubscription({
        name: req.name,
        topic: req.topic,
        ordering: req.ordering,
        filter: req.filter,
        ...policyFromWire(req),
      });
      return { subscription: subscriptionToWire(sub) };
    }),
    getSubscription: unary("GetSubscription", log, async (req) => ({
      subscription: subscriptionToWire(await admin.getSubscription(req.name)),
    })),
    updateSubscription: unary("UpdateSubscription", log, async (req) => {
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
    getSubscriptionStats: unary("GetSubscriptionStats", log, async (req) => {
      const stats = await admin.stats(req.name);
      return {
        backlog: stats.backlog,
        inFlight: stats.inFlight,
        oldestUnackedAge: seconds(stats.oldestUnackedAgeSeconds),
        deadLetters: stats.deadLetters,
        parkedKeys: stats.parkedKeys,
      };
    }),
    listSubscriptions: unary("ListSubscriptions", log, async (req) => {
      const page = await admin.listSubscriptions(req.topic, req.pageSize, req.pageToken);
      return { subscriptions: page.items.map(subscriptionToWire), nextPageToken: page.nextPageToken };
    }),
    deleteSubscription: unary("DeleteSubscription", log, async (req) => {
      await admin.deleteSubscription(req.name);
      return {};
    }),
    listDeadLetters: unary("ListDeadLetters", log, async (req) => {
      const page = await admin.listDeadLetters(
        selectionFromWire([], req.filter),
        req.pageSize,
        req.pageToken,
      );
      return { deadLetters: page.items.map(deadLetterToWire), nextPageToken: page.nextPageToken };
    }),
    redriveDeadLetters: unary("RedriveDeadLetters", log, async (req) => ({
      redriven: await admin.redriveDeadLetters(selectionFromWire(req.ids, req.filter)),
    })),
    listParkedKeys: unary("ListParkedKeys", log, async (req) => ({
      parkedKeys: (await admin.listParkedKeys(req.subscription)).map((p) => ({
        orderingKey: p.orderingKey,
        deadLetterId: p.deadLetterId,
        waiting: p.waiting,
      })),
    })),
    releaseParkedKeys: unary("ReleaseParkedKeys", log, async (req) => ({
      released: await admin.releaseParkedKeys(req.subscription, req.orderingKeys),
    })),
    purgeDeadLetters: unary("PurgeDeadLetters", log, async (req) => ({
      purged: await admin.purgeDeadLetters(selectionFromWire(req.ids, req.filter)),
    })),
  };
}
