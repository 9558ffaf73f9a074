// The Postgres delivery port (store/queue.ts on pg-boss and pgmesh.cursors) passes the same
// conformance suite as the in-memory one of the test kit. The file's broker creates topics and
// subscriptions; no stream is open, so its dispatchers take nothing, and its lapsed-lease sweep is
// slowed so that the suite sees the lapses itself.
import { randomBytes } from "node:crypto";
import { selectSubscription } from "../../src/store/queries/subscriptions.ts";
import { useTestBroker } from "../support/broker.ts";
import { deliveryQueueConformance } from "../support/delivery-queue-conformance.ts";
import { useJobQueue } from "../support/job-queue.ts";

const t = useTestBroker({ PGMESH_SUPERVISE_SECONDS: "3600" });
const q = useJobQueue(t);

deliveryQueueConformance("Postgres", {
  queue: () => q.queue,
  subscription: async () => {
    const id = randomBytes(4).toString("hex");
    await t.mesh.client.createTopic(`conf.${id}`);
    await t.mesh.client.createSubscription(`conf.${id}.sub`, `conf.${id}`, { ackDeadlineSeconds: 30 });
    const sub = await selectSubscription(q.sql as never, `conf.${id}.sub`);
    if (!sub) throw new Error("the subscription was not created");
    return sub;
  },
  publish: async (topic, ids) => {
    await t.mesh.client.publish(
      topic,
      ids.map((id) => ({ id, source: "s", type: "t" })),
    );
  },
  pass: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});
