// A retry's backoff and a delayed event are delivered when they fall due, not at the next fallback
// poll (here 10 s, so that only a wake-up at the due time passes; the delayed event goes first,
// well before the first poll).
import { describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { StreamProbe } from "../support/stream-probe.ts";

const t = useTestBroker({ PGMESH_POLL_MS: "10000", PGMESH_SUPERVISE_SECONDS: "30" });

describe("due wake-ups", () => {
  it("delivers an event with deliver_after when it falls due", async () => {
    const { client } = t.mesh;
    await client.createTopic("due.later");
    await client.createSubscription("due.later.sub", "due.later");
    const probe = await StreamProbe.open(client, "due.later.sub");
    const due = new Date(Date.now() + 1_500);
    await client.publish("due.later", [{ id: "l", source: "test", type: "t.v1.E", deliverAfter: due }]);
    const [delivery] = await probe.waitForDeliveries(1, 6_000);
    const late = Date.now() - due.getTime();
    expect(delivery?.event?.id).toBe("l");
    expect(late).toBeGreaterThanOrEqual(-100);
    expect(late).toBeLessThan(1_000);
    probe.cancel();
  });

  it("redelivers a nacked event when its 1 s backoff is over", async () => {
    const { client } = t.mesh;
    await client.createTopic("due.retry");
    await client.createSubscription("due.retry.sub", "due.retry", {
      retryPolicy: { initialBackoffSeconds: 1, maxBackoffSeconds: 1, jitter: 0 },
    });
    await client.publish("due.retry", [{ id: "r", source: "test", type: "t.v1.E" }]);
    const probe = await StreamProbe.open(client, "due.retry.sub");
    const [first] = await probe.waitForDeliveries(1);
    const nackedAt = Date.now();
    await probe.settleAndWait(() => probe.nack([first?.ackId as string], "not yet"), 1);
    const [, second] = await probe.waitForDeliveries(2, 5_000);
    const waited = Date.now() - nackedAt;
    expect(second?.deliveryAttempt).toBe(2);
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(3_000);
    probe.cancel();
  });
});
