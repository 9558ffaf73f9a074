// Ordered subscriptions, parked keys, attribute filters and the idempotency window.
import { status } from "@grpc/grpc-js";
import { AckStatus, type Delivery } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

const t = useTestBroker({ PGMESH_DEDUP_WINDOW_SECONDS: "2" });
const noBackoff = { initialBackoffSeconds: 0, maxBackoffSeconds: 0, jitter: 0 };

beforeAll(async () => {});

const byKey = (deliveries: Delivery[], key: string) =>
  deliveries.filter((d) => d.event?.orderingKey === key).map((d) => d.event?.id);

describe("ordering keys", () => {
  it("delivers each key in publish order, one at a time, under concurrency, while other keys flow", async () => {
    await t.mesh.client.createTopic("ordered");
    await t.mesh.client.createSubscription("ordered.sub", "ordered", {
      ordering: true,
      retryPolicy: noBackoff,
    });
    const keys = ["a", "b", "c", "d"];
    const events = Array.from({ length: 80 }, (_, i) => ({
      id: `${keys[i % 4]}-${Math.floor(i / 4)}`,
      source: "s",
      type: "t",
      orderingKey: keys[i % 4] as string,
    }));
    for (let i = 0; i < events.length; i += 20)
      await t.mesh.client.publish("ordered", events.slice(i, i + 20));
    // Two competing streams; each nacks the first delivery of every fifth event once.
    const probes = [
      await StreamProbe.open(t.mesh.client, "ordered.sub", 50),
      await StreamProbe.open(t.mesh.client, "ordered.sub", 50),
    ];
    const acked: string[] = [];
    const inFlightByKey = new Map<string, number>();
    let maxInFlightPerKey = 0;
    const handled = [0, 0];
    while (acked.length < events.length) {
      for (const [i, probe] of probes.entries()) {
        const fresh = probe.deliveries.slice(handled[i]);
        handled[i] = probe.deliveries.length;
        for (const d of fresh) {
          const key = d.event?.orderingKey ?? "";
          inFlightByKey.set(key, (inFlightByKey.get(key) ?? 0) + 1);
          maxInFlightPerKey = Math.max(maxInFlightPerKey, inFlightByKey.get(key) ?? 0);
        }
        for (const d of fresh) {
          const key = d.event?.orderingKey ?? "";
          inFlightByKey.set(key, (inFlightByKey.get(key) ?? 0) - 1);
          const n = Number(d.event?.id.split("-")[1]);
          if (n % 5 === 0 && d.deliveryAttempt === 1) {
            await probe.settleAndWait(() => probe.nack([d.ackId]), 1);
          } else {
            await probe.ackAndWait([d.ackId]);
            acked.push(d.event?.id ?? "");
          }
        }
      }
      await sleep(10);
    }
    expect(maxInFlightPerKey).toBe(1);
    for (const key of keys) {
      const expected = events.filter((e) => e.orderingKey === key).map((e) => e.id);
      expect(acked.filter((id) => id.startsWith(`${key}-`))).toEqual(expected);
    }
    for (const probe of probes) await probe.close();
  });

  it("a dead-lettered event parks its key while other keys flow; releasing the key lets the rest through", async () => {
    await t.mesh.client.createTopic("parking");
    await t.mesh.client.createSubscription("parking.sub", "parking", {
      ordering: true,
      maxDeliveryAttempts: 2,
      retryPolicy: noBackoff,
    });
    await t.mesh.client.publish("parking", [
      { id: "stuck-1", source: "s", type: "t", orderingKey: "stuck" },
      { id: "stuck-2", source: "s", type: "t", orderingKey: "stuck" },
      { id: "stuck-3", source: "s", type: "t", orderingKey: "stuck" },
      { id: "free-1", source: "s", type: "t", orderingKey: "free" },
      { id: "free-2", source: "s", type: "t", orderingKey: "free" },
    ]);
    const probe = await StreamProbe.open(t.mesh.client, "parking.sub");
    let handled = 0;
    const ackedIds: string[] = [];
    const deadline = Date.now() + 10_000;
    while (ackedIds.length < 2 && Date.now() < deadline) {
      await probe.until(() => probe.deliveries.length > handled, "a delivery");
      for (const d of probe.deliveries.slice(handled)) {
        handled++;
        if (d.event?.id === "stuck-1") await probe.settleAndWait(() => probe.nack([d.ackId], "poison"), 1);
        else {
          await probe.ackAndWait([d.ackId]);
          ackedIds.push(d.event?.id ?? "");
        }
      }
    }
    expect(ackedIds).toEqual(["free-1", "free-2"]);
    await sleep(500);
    expect(byKey(probe.deliveries, "stuck")).toEqual(["stuck-1", "stuck-1"]);
    const parked = await t.mesh.client.listParkedKeys("parking.sub");
    expect(parked.map((p) => [p.orderingKey, p.waiting])).toEqual([["stuck", 2]]);
    expect(parked[0]?.deadLetterId).not.toBe("");
    expect((await t.mesh.client.subscriptionStats("parking.sub")).parkedKeys).toBe(1);

    expect(await t.mesh.client.releaseParkedKeys("parking.sub", ["stuck"])).toBe(1);
    const rest = (await probe.waitForDeliveries(handled + 1)).slice(handled);
    expect(rest[0]?.event?.id).toBe("stuck-2");
    await probe.ackAndWait([rest[0]?.ackId ?? ""]);
    const [third] = (await probe.waitForDeliveries(handled + 2)).slice(handled + 1);
    expect(third?.event?.id).toBe("stuck-3");
    await probe.ackAndWait([third?.ackId ?? ""]);
    expect(await t.mesh.client.listParkedKeys("parking.sub")).toEqual([]);
    // The dead letter is still there to inspect or redrive.
    expect(
      (await t.mesh.client.listDeadLetters({ subscription: "parking.sub" })).deadLetters.map(
        (d) => d.event?.id,
      ),
    ).toEqual(["stuck-1"]);
    await probe.close();
  });

  it("redriving a parked dead letter puts it back at the head of its key", async () => {
    await t.mesh.client.createTopic("headfirst");
    await t.mesh.client.createSubscription("headfirst.sub", "headfirst", { ordering: true });
    await t.mesh.client.publish("headfirst", [
      { id: "k-1", source: "s", type: "t", orderingKey: "k" },
      { id: "k-2", source: "s", type: "t", orderingKey: "k" },
    ]);
    const probe = await StreamProbe.open(t.mesh.client, "headfirst.sub");
    const [first] = await probe.waitForDeliveries(1);
    await probe.settleAndWait(() => probe.reject([first?.ackId ?? ""], "bad"), 1);
    await sleep(300);
    expect(probe.deliveries).toHaveLength(1);
    const [dead] = (await t.mesh.client.listDeadLetters({ subscription: "headfirst.sub" })).deadLetters;
    expect(await t.mesh.client.redriveDeadLetters("headfirst.sub", { ids: [dead?.id ?? ""] })).toBe(1);
    const [, again] = await probe.waitForDeliveries(2);
    expect(again?.event?.id).toBe("k-1");
    expect(again?.deliveryAttempt).toBe(1);
    await probe.ackAndWait([again?.ackId ?? ""]);
    const [, , next] = await probe.waitForDeliveries(3);
    expect(next?.event?.id).toBe("k-2");
    await probe.close();
  });

  it("refuses releasing keys on an unordered subscription", async () => {
    await t.mesh.client.createTopic("plain");
    await t.mesh.client.createSubscription("plain.sub", "plain");
    expect((await rejection(t.mesh.client.releaseParkedKeys("plain.sub", ["x"]))).code).toBe(
      status.FAILED_PRECONDITION,
    );
  });
});

describe("ordering keys and deliver_after", () => {
  it("a delayed event does not hold back its key: it takes its place in the key when it falls due", async () => {
    await t.mesh.client.createTopic("ordered.later");
    await t.mesh.client.createSubscription("ordered.later.sub", "ordered.later", { ordering: true });
    const due = new Date(Date.now() + 1_500);
    await t.mesh.client.publish("ordered.later", [
      { id: "first-but-delayed", source: "s", type: "t", orderingKey: "k", deliverAfter: due },
      { id: "second", source: "s", type: "t", orderingKey: "k" },
      { id: "third", source: "s", type: "t", orderingKey: "k" },
    ]);
    const probe = await StreamProbe.open(t.mesh.client, "ordered.later.sub");
    const [second] = await probe.waitForDeliveries(1);
    expect(second?.event?.id).toBe("second");
    await probe.ackAndWait([second?.ackId as string]);
    const [, third] = await probe.waitForDeliveries(2);
    expect(third?.event?.id).toBe("third");
    await probe.ackAndWait([third?.ackId as string]);
    const [, , delayed] = await probe.waitForDeliveries(3, 5_000);
    expect(delayed?.event?.id).toBe("first-but-delayed");
    expect(Date.now()).toBeGreaterThanOrEqual(due.getTime() - 100);
    await probe.close();
  });
});

describe("filters", () => {
  it("delivers only the events whose attributes match the subscription's filter", async () => {
    await t.mesh.client.createTopic("regions");
    await t.mesh.client.createSubscription("regions.eu", "regions", {
      filter: 'attributes.region = "eu" AND NOT attributes:test',
    });
    await t.mesh.client.createSubscription("regions.all", "regions");
    await t.mesh.client.publish("regions", [
      { id: "1", source: "s", type: "t", attributes: { region: "eu" } },
      { id: "2", source: "s", type: "t", attributes: { region: "us" } },
      { id: "3", source: "s", type: "t", attributes: { region: "eu", test: "yes" } },
      { id: "4", source: "s", type: "t" },
    ]);
    const eu = await StreamProbe.open(t.mesh.client, "regions.eu");
    const all = await StreamProbe.open(t.mesh.client, "regions.all");
    await all.waitForDeliveries(4);
    await sleep(300);
    expect(eu.deliveries.map((d) => d.event?.id)).toEqual(["1"]);
    expect((await t.mesh.client.subscriptionStats("regions.eu")).backlog).toBe(0);
    await eu.close();
    await all.close();
  });

  it("refuses a filter it cannot parse, saying where", async () => {
    await t.mesh.client.createTopic("badfilter");
    const error = await rejection(
      t.mesh.client.createSubscription("badfilter.sub", "badfilter", { filter: "attributes.region == 'eu'" }),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toMatch(/^filter: .*column \d+/);
  });
});

describe("idempotency window", () => {
  it("treats a repeat inside the window as a duplicate and one after it as a new event", async () => {
    await t.mesh.client.createTopic("window");
    await t.mesh.client.createSubscription("window.sub", "window");
    expect(await t.mesh.client.publish("window", [{ id: "w", source: "s", type: "t" }])).toEqual([
      { id: "w", duplicate: false },
    ]);
    expect(await t.mesh.client.publish("window", [{ id: "w", source: "s", type: "t" }])).toEqual([
      { id: "w", duplicate: true },
    ]);
    // The window here is 2 s and keys are swept every second.
    await sleep(3500);
    expect(await t.mesh.client.publish("window", [{ id: "w", source: "s", type: "t" }])).toEqual([
      { id: "w", duplicate: false },
    ]);
    const probe = await StreamProbe.open(t.mesh.client, "window.sub");
    const deliveries = await probe.waitForDeliveries(2);
    expect(deliveries.map((d) => d.event?.id)).toEqual(["w", "w"]);
    const results = await probe.ackAndWait(deliveries.map((d) => d.ackId));
    expect(results.every((r) => r.status === AckStatus.ACK_STATUS_ACKED)).toBe(true);
    await probe.close();
  });
});
