// Durability and multi-broker behaviour: state lives in Postgres, not in a broker.
import { readFileSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import { Topic } from "@pgmesh/proto/pgmesh/v1/admin";
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

let db: TestDatabase;
const brokers: TestBroker[] = [];

async function broker(env: Record<string, string> = {}): Promise<TestBroker> {
  const started = await startTestBroker(db.url, env);
  brokers.push(started);
  return started;
}

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  for (const b of brokers) await b.stop();
  await db?.drop();
});

describe("restart", () => {
  it("events published before a broker stops are all delivered by a new broker on the same database", async () => {
    const first = await broker();
    await first.client.createTopic("durable");
    await first.client.createSubscription("durable.sub", "durable");
    const ids = Array.from({ length: 50 }, (_, i) => `d${i}`);
    await first.client.publish(
      "durable",
      ids.map((id) => ({ id, source: "s", type: "t" })),
    );
    // A consumer holds some of them unacked when the broker stops: they must not be lost either.
    const holder = await StreamProbe.open(first.client, "durable.sub", 10);
    await holder.waitForDeliveries(10);
    await first.stop();
    brokers.splice(brokers.indexOf(first), 1);
    const ended = await holder.ended;
    expect(ended.code).toBe(14); // UNAVAILABLE: reconnect elsewhere

    const second = await broker();
    const probe = await StreamProbe.open(second.client, "durable.sub", 100);
    const deliveries = await probe.waitForDeliveries(50);
    expect(new Set(deliveries.map((d) => d.event?.id))).toEqual(new Set(ids));
    await probe.ackAndWait(deliveries.map((d) => d.ackId));
    await sleep(500);
    expect(probe.deliveries).toHaveLength(50);
    await probe.close();
  });

  it("a drain lets a consumer ack what it holds before the broker stops", async () => {
    const first = await broker({ PGMESH_DRAIN_MS: "5000" });
    await first.client.createTopic("drain");
    await first.client.createSubscription("drain.sub", "drain");
    await first.client.publish("drain", [{ id: "held", source: "s", type: "t" }]);
    const probe = await StreamProbe.open(first.client, "drain.sub");
    const [delivery] = await probe.waitForDeliveries(1);
    const stopping = first.stop();
    brokers.splice(brokers.indexOf(first), 1);
    await sleep(100);
    const [result] = await probe.ackAndWait([delivery?.ackId ?? ""]);
    expect(result?.status).toBe(AckStatus.ACK_STATUS_ACKED);
    await stopping;
    const second = await broker();
    const after = await StreamProbe.open(second.client, "drain.sub");
    await sleep(1000);
    expect(after.deliveries).toHaveLength(0);
    await after.close();
  });
});

describe("two brokers on one database", () => {
  it("an event published through one broker reaches a stream on the other without waiting for a poll", async () => {
    // A long fallback poll: only the NOTIFY wake-up can deliver within the deadline below.
    const a = await broker({ PGMESH_POLL_MS: "60000" });
    const b = await broker({ PGMESH_POLL_MS: "60000" });
    await a.client.createTopic("mesh");
    await a.client.createSubscription("mesh.sub", "mesh");
    const probe = await StreamProbe.open(b.client, "mesh.sub");
    await sleep(200);
    const started = Date.now();
    await a.client.publish("mesh", [{ id: "hop", source: "s", type: "t" }]);
    const [delivery] = await probe.waitForDeliveries(1, 5000);
    expect(delivery?.event?.id).toBe("hop");
    expect(Date.now() - started).toBeLessThan(2000);
    await probe.ackAndWait([delivery?.ackId ?? ""]);
    await probe.close();
  });

  it("a lapsed lease is redelivered by another broker, and the late ack is refused as stale", async () => {
    const a = await broker();
    const b = await broker();
    await a.client.createTopic("lease");
    await a.client.createSubscription("lease.sub", "lease", { ackDeadlineSeconds: 2 });
    await a.client.publish("lease", [{ id: "slow", source: "s", type: "t" }]);
    const slow = await StreamProbe.open(a.client, "lease.sub");
    const [first] = await slow.waitForDeliveries(1);
    // The slow consumer stops taking more; a second consumer on the other broker waits.
    slow.flow(0);
    const other = await StreamProbe.open(b.client, "lease.sub");
    const [second] = await other.waitForDeliveries(1, 10_000);
    expect(second?.event?.id).toBe("slow");
    expect(second?.deliveryAttempt).toBe(2);
    const [late] = await slow.ackAndWait([first?.ackId ?? ""]);
    expect(late?.status).toBe(AckStatus.ACK_STATUS_STALE);
    const [current] = await other.ackAndWait([second?.ackId ?? ""]);
    expect(current?.status).toBe(AckStatus.ACK_STATUS_ACKED);
    await slow.close();
    await other.close();
  });

  it("a subscription deleted through one broker ends the other broker's streams on it with NOT_FOUND", async () => {
    const a = await broker();
    const b = await broker();
    await a.client.createTopic("gone");
    await a.client.createSubscription("gone.sub", "gone");
    const onA = await StreamProbe.open(a.client, "gone.sub");
    const onB = await StreamProbe.open(b.client, "gone.sub");
    await a.client.deleteSubscription("gone.sub");
    expect(await onA.ended).toEqual({ code: 5, details: "subscription gone.sub was deleted" });
    expect(await onB.ended).toEqual({ code: 5, details: "subscription gone.sub was deleted" });
  });

  it("a topic schema set, replaced or dropped (with its topic) through one broker applies to publishes through the other at once", async () => {
    // The first schema check of each publish below loads and caches the topic's schema on b.
    const a = await broker();
    const b = await broker();
    const descriptors = readFileSync(new URL("../../descriptors/pgmesh.binpb", import.meta.url));
    const topic = Buffer.from(
      Topic.encode({ name: "x", createTime: undefined, retention: undefined }).finish(),
    );
    const typed = { typeUrl: "type.googleapis.com/pgmesh.v1.Topic", value: topic };
    const other = { typeUrl: "type.googleapis.com/other.v1.Thing", value: Buffer.from([1]) };
    let n = 0;
    const publishOnB = (data: typeof typed) =>
      b.client.publish("typed.mesh", [{ id: `e${n++}`, source: "s", data }]);
    // b's cache kept a schema for a second: a change was seen there only after up to that long.
    // Now the change's NOTIFY reaches it within milliseconds; 700 ms is well under a second.
    const refusedWithin = async (data: typeof typed, ms: number) => {
      const deadline = Date.now() + ms;
      for (;;) {
        const refused = await rejection(publishOnB(data)).catch(() => undefined);
        if (refused) return refused;
        if (Date.now() > deadline) return undefined;
        await sleep(20);
      }
    };

    await a.client.createTopic("typed.mesh");
    await publishOnB(other);
    await a.client.setTopicSchema("typed.mesh", descriptors, ["pgmesh.v1.Topic"]);
    expect((await refusedWithin(other, 700))?.code).toBe(status.INVALID_ARGUMENT);
    await publishOnB(typed);

    await a.client.setTopicSchema("typed.mesh", descriptors, ["pgmesh.v1.Subscription"]);
    expect((await refusedWithin(typed, 700))?.code).toBe(status.INVALID_ARGUMENT);

    // The topic goes, and its schema with it (a cascade, which no statement of ours names).
    await a.client.deleteTopic("typed.mesh");
    await a.client.createTopic("typed.mesh");
    await sleep(200);
    expect(await publishOnB(other)).toHaveLength(1);
  });
});
