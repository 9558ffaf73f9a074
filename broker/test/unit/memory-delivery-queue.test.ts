// The in-memory delivery port of the test kit passes the same conformance suite as the Postgres one.
import { randomBytes } from "node:crypto";
import { deliveryQueueConformance } from "../support/delivery-queue-conformance.ts";
import { MemoryDeliveryQueue } from "../support/memory-delivery-queue.ts";
import { testSubscription } from "../support/subscription.ts";

const memory = new MemoryDeliveryQueue();

deliveryQueueConformance("in memory", {
  queue: () => memory,
  subscription: async () => {
    const id = randomBytes(4).toString("hex");
    const sub = {
      ...testSubscription,
      name: `s-${id}`,
      topic: `t-${id}`,
      queue: `q-${id}`,
      ackDeadlineSeconds: 30,
    };
    memory.addSubscription(sub);
    return sub;
  },
  publish: async (topic, ids) => memory.publish(topic, ids),
  pass: async (ms) => {
    memory.now += ms;
  },
});
