// Admin calls that race with each other or with deliveries: concurrent redrives of the same dead
// letters, and a policy change while a consumer holds an extended lease.
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

const t = useTestBroker();

describe("redrive under concurrency", () => {
  it("redrives each dead letter once however many redrives run at the same time", async () => {
    await t.mesh.client.createTopic("race");
    await t.mesh.client.createSubscription("race.sub", "race");
    const count = 40;
    await t.mesh.client.publish(
      "race",
      Array.from({ length: count }, (_, i) => ({ id: `e${i}`, source: "s", type: "t" })),
    );
    const probe = await StreamProbe.open(t.mesh.client, "race.sub", 1000);
    const first = await probe.waitForDeliveries(count);
    await probe.settleAndWait(
      () =>
        probe.reject(
          first.map((d) => d.ackId),
          "poison",
        ),
      count,
    );
    expect((await t.mesh.client.subscriptionStats("race.sub")).deadLetters).toBe(count);

    const redriven = await Promise.all(
      Array.from({ length: 16 }, () => t.mesh.client.redriveDeadLetters("race.sub")),
    );
    expect(redriven.reduce((a, b) => a + b, 0)).toBe(count);
    await probe.waitForDeliveries(count * 2);
    await sleep(1000);
    // Each event came back exactly once.
    const again = probe.deliveries.slice(count);
    expect(again).toHaveLength(count);
    expect(new Set(again.map((d) => d.event?.id)).size).toBe(count);
    await probe.ackAndWait(again.map((d) => d.ackId));
    await probe.close();
  });
});

describe("policy updates", () => {
  it("do not shorten a lease already granted or extended", async () => {
    await t.mesh.client.createTopic("lease");
    await t.mesh.client.createSubscription("lease.sub", "lease", { ackDeadlineSeconds: 4 });
    await t.mesh.client.publish("lease", [
      { id: "extended", source: "s", type: "t" },
      { id: "granted", source: "s", type: "t" },
    ]);
    const probe = await StreamProbe.open(t.mesh.client, "lease.sub");
    const delivered = await probe.waitForDeliveries(2);
    const byId = (id: string) => delivered.find((d) => d.event?.id === id)?.ackId ?? "";
    const [extended] = await probe.settleAndWait(() => probe.extend([byId("extended")], 30), 1);
    expect(extended?.status).toBe(AckStatus.ACK_STATUS_EXTENDED);
    await t.mesh.client.updateSubscription("lease.sub", { ackDeadlineSeconds: 1 });
    // Past the new 1 s deadline and a few lapsed-lease sweeps, inside the granted 4 s and extended 30 s.
    await sleep(2_500);
    expect(probe.deliveries).toHaveLength(2);
    const results = await probe.ackAndWait([byId("granted"), byId("extended")]);
    expect(results.map((r) => r.status)).toEqual([AckStatus.ACK_STATUS_ACKED, AckStatus.ACK_STATUS_ACKED]);
    // The new deadline applies to what is delivered from now on.
    expect((await t.mesh.client.getSubscription("lease.sub")).ackDeadline?.seconds).toBe(1);
    await probe.close();
  });
});
