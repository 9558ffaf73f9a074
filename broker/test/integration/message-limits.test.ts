// No message the broker sends exceeds what a default gRPC client accepts (4 MiB), however large
// the events; the byte window (max_outstanding_bytes) bounds what a stream holds.
import { credentials, status } from "@grpc/grpc-js";
import { AckStatus, SubscriberServiceClient } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { describe, expect, it } from "vitest";
import { startTestBroker, useTestBroker } from "../support/broker.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

const t = useTestBroker();
const MiB = 1024 * 1024;

/** An event just under the 1 MiB event limit; `n` tells them apart. */
const bigEvent = (n: number) => ({
  id: `big-${n}`,
  source: "s",
  type: "t",
  data: { typeUrl: "", value: Buffer.alloc(MiB - 1024, n) },
});

/** Publishes `count` big events, three per request (a request may be at most 4 MiB). */
async function publishBig(topic: string, count: number, from = 0): Promise<void> {
  for (let n = from; n < from + count; n += 3) {
    const batch = Array.from({ length: Math.min(3, from + count - n) }, (_, i) => bigEvent(n + i));
    await t.mesh.client.publish(topic, batch);
  }
}

async function setUp(name: string, policy: Parameters<typeof t.mesh.client.createSubscription>[2] = {}) {
  await t.mesh.client.createTopic(name);
  await t.mesh.client.createSubscription(`${name}.sub`, name, policy);
}

describe("large events and a default client", () => {
  it("delivers 1 MiB events in messages a default client accepts, none charged an attempt", async () => {
    await setUp("big");
    await publishBig("big", 10);
    const probe = await StreamProbe.open(t.mesh.client, "big.sub", 100);
    expect(probe.opened?.maxMessageBytes).toBe(4 * MiB - 64 * 1024);
    const deliveries = await probe.waitForDeliveries(10);
    expect(deliveries.map((d) => d.deliveryAttempt)).toEqual(Array(10).fill(1));
    expect(new Set(deliveries.map((d) => d.event?.id)).size).toBe(10);
    expect(deliveries.every((d) => d.event?.data?.value.byteLength === MiB - 1024)).toBe(true);
    const results = await probe.ackAndWait(deliveries.map((d) => d.ackId));
    expect(results.every((r) => r.status === AckStatus.ACK_STATUS_ACKED)).toBe(true);
    await probe.close();
    expect((await probe.ended).code).toBe(status.OK);
  });

  it("pages dead letters of large events within a default client's limit", async () => {
    await setUp("bigdead");
    await publishBig("bigdead", 5);
    const probe = await StreamProbe.open(t.mesh.client, "bigdead.sub", 100);
    const deliveries = await probe.waitForDeliveries(5);
    await probe.settleAndWait(
      () =>
        probe.reject(
          deliveries.map((d) => d.ackId),
          "too big to handle",
        ),
      5,
    );
    await probe.close();
    const first = await t.mesh.client.listDeadLetters({ subscription: "bigdead.sub" }, 100);
    expect(first.deadLetters.length).toBeGreaterThan(0);
    expect(first.deadLetters.length).toBeLessThan(5);
    expect(first.nextPageToken).not.toBe("");
    const ids = first.deadLetters.map((d) => d.event?.id);
    let token = first.nextPageToken;
    while (token) {
      const page = await t.mesh.client.listDeadLetters({ subscription: "bigdead.sub" }, 100, token);
      ids.push(...page.deadLetters.map((d) => d.event?.id));
      token = page.nextPageToken;
    }
    expect(ids.sort()).toEqual(["big-0", "big-1", "big-2", "big-3", "big-4"]);
  });

  it("answers a publish request over 4 MiB with RESOURCE_EXHAUSTED and a message", async () => {
    await t.mesh.client.createTopic("toobig");
    const error = await rejection(
      t.mesh.client.publish(
        "toobig",
        [0, 1, 2, 3, 4].map((n) => bigEvent(n)),
      ),
    );
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toMatch(/^Received message larger than max \(\d+ vs 4194304\)$/);
  });
});

describe("topic schemas", () => {
  it("refuses a descriptor set over 2 MiB, which could not be returned to a default client", async () => {
    await t.mesh.client.createTopic("bigschema");
    const error = await rejection(
      t.mesh.client.setTopicSchema("bigschema", Buffer.alloc(3 * MiB), ["shop.v1.Order"]),
    );
    expect(error).toEqual({
      code: status.INVALID_ARGUMENT,
      details:
        "schema.file_descriptor_set is 3145728 bytes; at most 2097152 (2 MiB), so that the schema fits in a response a default client accepts",
    });
  });
});

describe("byte window", () => {
  it("stops at max_outstanding_bytes, delivers an event larger than the window alone, and flow changes it", async () => {
    await setUp("bytes");
    await publishBig("bytes", 6);
    // 2.5 MiB: two events leave room, so a third is taken (the window is soft), then no more.
    const probe = await StreamProbe.open(t.mesh.client, "bytes.sub", 100, "test", 2.5 * MiB);
    expect(probe.opened?.maxOutstandingBytes).toBe(2.5 * MiB);
    await probe.waitForDeliveries(3);
    await sleep(500);
    expect(probe.deliveries).toHaveLength(3);
    // Acking one frees room for one more.
    await probe.ackAndWait([probe.deliveries[0]?.ackId ?? ""]);
    await probe.waitForDeliveries(4);
    await sleep(500);
    expect(probe.deliveries).toHaveLength(4);
    // A window smaller than one event: still one at a time once the stream holds nothing.
    probe.flow(100, 100 * 1024);
    await probe.ackAndWait(probe.deliveries.slice(1, 4).map((d) => d.ackId));
    await probe.waitForDeliveries(5);
    await sleep(500);
    expect(probe.deliveries).toHaveLength(5);
    // A flow without a byte limit keeps it; one with 0 lifts it.
    probe.flow(100);
    await sleep(300);
    expect(probe.deliveries).toHaveLength(5);
    probe.flow(100, 0);
    await probe.waitForDeliveries(6);
    expect(probe.deliveries.map((d) => d.deliveryAttempt)).toEqual(Array(6).fill(1));
    await probe.ackAndWait(probe.deliveries.slice(4).map((d) => d.ackId));
    await probe.close();
  });
});

describe("byte window after small events", () => {
  it("holds back what it leased beyond the window and hands it out first, uncharged", async () => {
    await setUp("mixed");
    const probe = await StreamProbe.open(t.mesh.client, "mixed.sub", 100, "test", 2 * MiB);
    // Small events teach the broker a small typical size...
    await t.mesh.client.publish("mixed", [{ id: "small", source: "s", type: "t" }]);
    const [small] = await probe.waitForDeliveries(1);
    await probe.ackAndWait([small?.ackId ?? ""]);
    // ...so it leases all six 600 KiB events at once; four fit the 2 MiB window (the fourth takes it
    // past), two wait at the broker.
    await t.mesh.client.publish(
      "mixed",
      Array.from({ length: 6 }, (_, n) => ({
        ...bigEvent(n),
        data: { typeUrl: "", value: Buffer.alloc(600 * 1024) },
      })),
    );
    await probe.waitForDeliveries(5);
    await sleep(500);
    expect(probe.deliveries).toHaveLength(5);
    expect(await t.mesh.client.subscriptionStats("mixed.sub")).toMatchObject({ backlog: 0, inFlight: 6 });
    await probe.ackAndWait(probe.deliveries.slice(1).map((d) => d.ackId));
    await probe.waitForDeliveries(7);
    expect(probe.deliveries.map((d) => d.deliveryAttempt)).toEqual(Array(7).fill(1));
    expect(new Set(probe.deliveries.map((d) => d.event?.id)).size).toBe(7);
    await probe.ackAndWait(probe.deliveries.slice(5).map((d) => d.ackId));
    expect(await t.mesh.client.subscriptionStats("mixed.sub")).toMatchObject({ backlog: 0, inFlight: 0 });
    await probe.close();
  });
});

describe("ack results", () => {
  it("splits the results of a large settle under the message limit", async () => {
    // A broker and a client both at 2 MiB, so that one request's results exceed it.
    const own = await startTestBroker(t.db.url, { PGMESH_MAX_MESSAGE_BYTES: String(2 * MiB) });
    const client = new SubscriberServiceClient(own.address, credentials.createInsecure(), {
      "grpc.max_receive_message_length": 2 * MiB,
    });
    try {
      await own.client.createTopic("results");
      await own.client.createSubscription("results.sub", "results");
      const probe = await StreamProbe.open({ subscriber: client } as never, "results.sub");
      // The results repeat each id: 60,000 ids of 40 characters make 2.5 MB of request and 2.8 MB
      // of results.
      const ids = Array.from({ length: 60_000 }, (_, i) => `never-issued-${String(i).padStart(27, "0")}`);
      const results = await probe.settleAndWait(() => probe.ack(ids), ids.length);
      expect(results.map((r) => r.ackId)).toEqual(ids);
      expect(results.every((r) => r.status === AckStatus.ACK_STATUS_UNKNOWN)).toBe(true);
      await probe.close();
      expect((await probe.ended).code).toBe(status.OK);
    } finally {
      client.close();
      await own.stop();
    }
  });
});
