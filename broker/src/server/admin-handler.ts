// pgmesh.v1.AdminService on top of the delivery layer's Admin.
import type { AdminServiceServer } from "@pgmesh/sdk/gen/pgmesh/v1/admin";
import type { Admin } from "../delivery/admin.ts";
import { subscriptionToWire, topicToWire, wholeSeconds } from "./convert.ts";
import type { ErrorLogger } from "./status.ts";
import { unary } from "./unary.ts";

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
    deleteTopic: unary("DeleteTopic", log, async (req) => {
      await admin.deleteTopic(req.name);
      return {};
    }),
    createSubscription: unary("CreateSubscription", log, async (req) => {
      const sub = await admin.createSubscription({
        name: req.name,
        topic: req.topic,
        ackDeadlineSeconds: wholeSeconds("ack_deadline", req.ackDeadline),
      });
      return { subscription: subscriptionToWire(sub) };
    }),
    getSubscription: unary("GetSubscription", log, async (req) => ({
      subscription: subscriptionToWire(await admin.getSubscription(req.name)),
    })),
    listSubscriptions: unary("ListSubscriptions", log, async (req) => {
      const page = await admin.listSubscriptions(req.topic, req.pageSize, req.pageToken);
      return { subscriptions: page.items.map(subscriptionToWire), nextPageToken: page.nextPageToken };
    }),
    deleteSubscription: unary("DeleteSubscription", log, async (req) => {
      await admin.deleteSubscription(req.name);
      return {};
    }),
  };
}
