// A Subscribe stream's life outside the happy path: idle heartbeats, a client that never opens,
// a client that half-closes.
import { status } from "@grpc/grpc-js";
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, useTestBroker } from "../support/broker.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

const t = useTestBroker({ PGMESH_HEARTBEAT_MS: "200", PGMESH_OPEN_TIMEOUT_MS: "300" });

beforeAll(async () => {
  await t.mesh.client.createTopic("life");
  await t.mesh.client.createSubscription("life.sub", "life");
});

describe("stream lifecycle", () => {
  it("sends heartbeats on an idle stream and announces their interval", async () => {
    const probe = await StreamProbe.open(t.mesh.client, "life.sub");
    expect(probe.opened?.heartbeatInterval).toEqual({ seconds: 0, nanos: 200_000_000 });
    await sleep(1000);
    expect(probe.heartbeats).toBeGreaterThanOrEqual(3);
    await probe.close();
  });

  it("beats one interval after the last message, not two", async () => {
    // Its own broker with a 1 s interval, so that a loaded machine's timer delays stay well inside the
    // margin between one interval and the two it used to take.
    const own = await startTestBroker(t.db.url, { PGMESH_HEARTBEAT_MS: "1000" });
    try {
      await own.client.createTopic("beats");
      await own.client.createSubscription("beats.sub", "beats");
      const probe = await StreamProbe.open(own.client, "beats.sub");
      await probe.until(() => probe.heartbeats >= 1, "the first heartbeat", 5000);
      // Then a delivery at a moment between beats.
      await sleep(150);
      await own.client.publish("beats", [{ id: "between-beats", source: "s", type: "t" }]);
      const [delivery] = await probe.waitForDeliveries(1);
      await probe.ackAndWait([delivery?.ackId ?? ""]);
      const before = probe.heartbeats;
      await probe.until(() => probe.heartbeats > before, "a heartbeat after the ack", 5000);
      // The gap from each message to the heartbeat that follows it: opened -> beat, ack result -> beat.
      const gaps = probe.arrivals
        .slice(1)
        .map((a, i) => ({
          kind: a.kind,
          after: probe.arrivals[i]?.kind,
          gap: a.at - (probe.arrivals[i]?.at ?? 0),
        }))
        .filter((g) => g.kind === "heartbeat" && g.after !== "heartbeat");
      expect(gaps.map((g) => g.after)).toEqual(["opened", "ackResults"]);
      for (const { gap } of gaps) {
        expect(gap).toBeGreaterThanOrEqual(900);
        expect(gap).toBeLessThan(1500);
      }
      await probe.close();
    } finally {
      await own.stop();
    }
  });

  it("ends a stream that never sends open with INVALID_ARGUMENT", async () => {
    const probe = StreamProbe.raw(t.mesh.client);
    expect(await probe.ended).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "no `open` message arrived; send `open` first",
    });
  });

  it("finishes cleanly when the client half-closes, releasing what it held", async () => {
    await t.mesh.client.publish("life", [{ id: "held", source: "s", type: "t" }]);
    const probe = await StreamProbe.open(t.mesh.client, "life.sub");
    await probe.waitForDeliveries(1);
    await probe.close();
    expect((await probe.ended).code).toBe(status.OK);
    const next = await StreamProbe.open(t.mesh.client, "life.sub");
    const [again] = await next.waitForDeliveries(1);
    expect(again?.event?.id).toBe("held");
    expect(again?.deliveryAttempt).toBe(2);
    await next.close();
  });
});

describe("acks one by one", () => {
  it("settles a client's per-event ack messages correctly when they are coalesced", async () => {
    await t.mesh.client.createTopic("one.by.one");
    await t.mesh.client.createSubscription("one.by.one.sub", "one.by.one");
    await t.mesh.client.publish(
      "one.by.one",
      Array.from({ length: 200 }, (_, i) => ({ id: `e${i}`, source: "s", type: "t" })),
    );
    const probe = await StreamProbe.open(t.mesh.client, "one.by.one.sub", 200);
    const deliveries = await probe.waitForDeliveries(200);
    // 200 separate ack messages, plus one unknown id in the middle and a repeat at the end.
    for (const [i, d] of deliveries.entries()) {
      probe.ack([d.ackId]);
      if (i === 100) probe.ack(["bogus"]);
    }
    probe.ack([deliveries[0]?.ackId ?? ""]);
    await probe.until(() => probe.ackResults.length === 202, "202 results");
    const byId = new Map(probe.ackResults.map((r) => [r.ackId, r.status]));
    expect(deliveries.every((d) => byId.get(d.ackId) !== undefined)).toBe(true);
    expect(probe.ackResults.filter((r) => r.status === AckStatus.ACK_STATUS_ACKED)).toHaveLength(200);
    expect(probe.ackResults.filter((r) => r.status === AckStatus.ACK_STATUS_UNKNOWN)).toHaveLength(1);
    // The repeat of an id already acked is STALE (already settled), not UNKNOWN.
    expect(probe.ackResults.at(-1)).toMatchObject({
      ackId: deliveries[0]?.ackId,
      status: AckStatus.ACK_STATUS_STALE,
    });
    expect(await t.mesh.client.subscriptionStats("one.by.one.sub")).toMatchObject({
      backlog: 0,
      inFlight: 0,
    });
    await probe.close();
  });
});
