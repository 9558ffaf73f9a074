// The path an event travels: publish -> Postgres -> Subscribe stream -> ack, on a real broker.
import { Any } from "@pgmesh/proto/google/protobuf/any";
import { Topic } from "@pgmesh/proto/pgmesh/v1/admin";
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

const t = useTestBroker();

beforeAll(async () => {});

describe("publish -> subscribe -> ack", () => {
  it("delivers every envelope field intact and the Any payload decodes", async () => {
    const { client } = t.mesh;
    await client.createTopic("orders");
    await client.createSubscription("orders.billing", "orders");
    const payload = Topic.encode({
      name: "payload-inside",
      createTime: new Date("2026-01-02T03:04:05Z"),
      retention: undefined,
    }).finish();
    const time = new Date("2026-11-29T10:00:00.123Z");
    const [result] = await client.publish("orders", [
      {
        id: "order-1",
        source: "shop",
        type: "shop.v1.OrderPlaced",
        subject: "order/1",
        time,
        attributes: { region: "eu", priority: "high" },
        orderingKey: "customer-7",
        data: Any.fromPartial({
          typeUrl: "type.googleapis.com/pgmesh.v1.Topic",
          value: Buffer.from(payload),
        }),
      },
    ]);
    expect(result).toEqual({ id: "order-1", duplicate: false });

    const probe = await StreamProbe.open(client, "orders.billing");
    expect(probe.opened).toMatchObject({
      subscription: "orders.billing",
      topic: "orders",
      maxOutstandingMessages: 100,
    });
    const [delivery] = await probe.waitForDeliveries(1);
    expect(delivery?.deliveryAttempt).toBe(1);
    const event = delivery?.event;
    expect(event).toMatchObject({
      id: "order-1",
      source: "shop",
      type: "shop.v1.OrderPlaced",
      subject: "order/1",
      time,
      attributes: { region: "eu", priority: "high" },
      orderingKey: "customer-7",
      topic: "orders",
    });
    expect(event?.publishTime).toBeInstanceOf(Date);
    expect(event?.data?.typeUrl).toBe("type.googleapis.com/pgmesh.v1.Topic");
    expect(Topic.decode(event?.data?.value ?? new Uint8Array())).toEqual({
      name: "payload-inside",
      createTime: new Date("2026-01-02T03:04:05Z"),
      retention: undefined,
    });

    const [ackResult] = await probe.ackAndWait([delivery?.ackId ?? ""]);
    expect(ackResult).toEqual({ ackId: delivery?.ackId, status: AckStatus.ACK_STATUS_ACKED, message: "" });
    await probe.close();

    // Acked: a new stream gets nothing, even after the lease would have lapsed.
    const again = await StreamProbe.open(client, "orders.billing");
    await sleep(1500);
    expect(again.deliveries).toHaveLength(0);
    await again.close();
  });

  it("fills the type from the payload's type URL and generates an id when none is given", async () => {
    const { client } = t.mesh;
    await client.createTopic("defaults");
    await client.createSubscription("defaults.sub", "defaults");
    const [result] = await client.publish("defaults", [
      {
        source: "svc",
        data: Any.fromPartial({ typeUrl: "type.googleapis.com/shop.v1.Thing", value: Buffer.from([8, 1]) }),
      },
    ]);
    expect(result?.id).toMatch(/^[0-9a-f-]{36}$/);
    const probe = await StreamProbe.open(client, "defaults.sub");
    const [delivery] = await probe.waitForDeliveries(1);
    expect(delivery?.event?.type).toBe("shop.v1.Thing");
    expect(delivery?.event?.id).toBe(result?.id);
    await probe.ackAndWait([delivery?.ackId ?? ""]);
    await probe.close();
  });

  it("fans out: every subscription of a topic receives every event", async () => {
    const { client } = t.mesh;
    await client.createTopic("fanout");
    await client.createSubscription("fanout.a", "fanout");
    await client.createSubscription("fanout.b", "fanout");
    const ids = Array.from({ length: 20 }, (_, i) => `e${i}`);
    await client.publish(
      "fanout",
      ids.map((id) => ({ id, source: "test", type: "t" })),
    );
    for (const name of ["fanout.a", "fanout.b"]) {
      const probe = await StreamProbe.open(client, name);
      const deliveries = await probe.waitForDeliveries(20);
      expect(deliveries.map((d) => d.event?.id).sort()).toEqual([...ids].sort());
      await probe.ackAndWait(deliveries.map((d) => d.ackId));
      await probe.close();
    }
  });

  it("competing consumers: two streams on one subscription each get a share, every event exactly once", async () => {
    const { client } = t.mesh;
    await client.createTopic("work");
    await client.createSubscription("work.q", "work");
    const first = await StreamProbe.open(client, "work.q", 10);
    const second = await StreamProbe.open(client, "work.q", 10);
    const ids = Array.from({ length: 200 }, (_, i) => `job-${i}`);
    for (let i = 0; i < ids.length; i += 50) {
      await client.publish(
        "work",
        ids.slice(i, i + 50).map((id) => ({ id, source: "test", type: "t" })),
      );
    }
    // Both keep acking what they get until all 200 are settled.
    const seen: string[] = [];
    const pump = async (probe: StreamProbe) => {
      let acked = 0;
      while (seen.length < ids.length) {
        await probe.until(
          () => probe.deliveries.length > acked || seen.length >= ids.length,
          "more work",
          15_000,
        );
        const fresh = probe.deliveries.slice(acked);
        acked += fresh.length;
        seen.push(...fresh.map((d) => d.event?.id ?? ""));
        if (fresh.length > 0) await probe.ackAndWait(fresh.map((d) => d.ackId));
      }
    };
    await Promise.all([pump(first), pump(second)]);
    expect(seen.sort()).toEqual([...ids].sort());
    expect(first.deliveries.length).toBeGreaterThan(0);
    expect(second.deliveries.length).toBeGreaterThan(0);
    expect(first.deliveries.length + second.deliveries.length).toBe(200);
    await first.close();
    await second.close();
  });
});

describe("redelivery", () => {
  it("an unacked event comes back as attempt 2 once its stream closes; an acked one never does", async () => {
    const { client } = t.mesh;
    await client.createTopic("redeliver");
    await client.createSubscription("redeliver.sub", "redeliver");
    await client.publish("redeliver", [
      { id: "keep", source: "t", type: "t" },
      { id: "drop", source: "t", type: "t" },
    ]);
    const first = await StreamProbe.open(client, "redeliver.sub");
    const delivered = await first.waitForDeliveries(2);
    const keep = delivered.find((d) => d.event?.id === "keep");
    await first.ackAndWait([keep?.ackId ?? ""]);
    await first.close();

    const second = await StreamProbe.open(client, "redeliver.sub");
    const [redelivered] = await second.waitForDeliveries(1);
    expect(redelivered?.event?.id).toBe("drop");
    expect(redelivered?.deliveryAttempt).toBe(2);
    await sleep(1000);
    expect(second.deliveries).toHaveLength(1);
    await second.ackAndWait([redelivered?.ackId ?? ""]);
    await second.close();
  });

  it("a cancelled stream (crashed client) releases its deliveries at once", async () => {
    const { client } = t.mesh;
    await client.createTopic("crash");
    await client.createSubscription("crash.sub", "crash", { ackDeadlineSeconds: 600 });
    await client.publish("crash", [{ id: "x", source: "t", type: "t" }]);
    const first = await StreamProbe.open(client, "crash.sub");
    await first.waitForDeliveries(1);
    first.cancel();
    const second = await StreamProbe.open(client, "crash.sub");
    // Far sooner than the 600 s ack deadline.
    const [again] = await second.waitForDeliveries(1, 5000);
    expect(again?.event?.id).toBe("x");
    expect(again?.deliveryAttempt).toBe(2);
    await second.close();
  });

  it("a nack redelivers the event", async () => {
    const { client } = t.mesh;
    await client.createTopic("nacks");
    await client.createSubscription("nacks.sub", "nacks");
    await client.publish("nacks", [{ id: "n", source: "t", type: "t" }]);
    const probe = await StreamProbe.open(client, "nacks.sub");
    const [first] = await probe.waitForDeliveries(1);
    probe.nack([first?.ackId ?? ""]);
    const deliveries = await probe.waitForDeliveries(2);
    expect(probe.ackResults[0]).toEqual({
      ackId: first?.ackId,
      status: AckStatus.ACK_STATUS_NACKED,
      message: "",
    });
    expect(deliveries[1]?.event?.id).toBe("n");
    expect(deliveries[1]?.deliveryAttempt).toBe(2);
    await probe.close();
  });
});

describe("flow control", () => {
  it("with a window of 5 the server never has more than 5 unacked events on the stream", async () => {
    const { client } = t.mesh;
    await client.createTopic("flow");
    await client.createSubscription("flow.sub", "flow");
    await client.publish(
      "flow",
      Array.from({ length: 30 }, (_, i) => ({ id: `f${i}`, source: "t", type: "t" })),
    );
    const probe = await StreamProbe.open(client, "flow.sub", 5);
    let acked = 0;
    let maxOutstanding = 0;
    while (acked < 30) {
      await probe.until(() => probe.deliveries.length > acked, "a delivery");
      // Give the server every chance to overrun the window before we look.
      await sleep(50);
      maxOutstanding = Math.max(maxOutstanding, probe.deliveries.length - acked);
      const next = probe.deliveries.slice(acked, acked + 2);
      await probe.ackAndWait(next.map((d) => d.ackId));
      acked += next.length;
    }
    expect(maxOutstanding).toBe(5);
    expect(new Set(probe.deliveries.map((d) => d.event?.id)).size).toBe(30);
    await probe.close();
  });

  it("a window of 0 pauses delivery and raising it resumes", async () => {
    const { client } = t.mesh;
    await client.createTopic("pause");
    await client.createSubscription("pause.sub", "pause");
    const probe = await StreamProbe.open(client, "pause.sub", 1);
    probe.flow(0);
    await sleep(200);
    await client.publish("pause", [{ id: "p1", source: "t", type: "t" }]);
    await sleep(1000);
    expect(probe.deliveries).toHaveLength(0);
    probe.flow(10);
    await probe.waitForDeliveries(1);
    await probe.close();
  });
});
