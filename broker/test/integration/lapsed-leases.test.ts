// A consumer that goes silent holding many leases gets them all redelivered soon after its ack
// deadline, not 500 a sweep.
import { describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { StreamProbe } from "../support/stream-probe.ts";
import { until } from "../support/until.ts";

const t = useTestBroker();
const HELD = 10_000;
const ACK_DEADLINE_SECONDS = 2;

describe("lapsed leases", () => {
  it(`redelivers ${HELD.toLocaleString("en")} lapsed leases within the ack deadline plus a few seconds`, async () => {
    const { client } = t.mesh;
    await client.createTopic("lapse");
    await client.createSubscription("lapse.sub", "lapse", {
      ackDeadlineSeconds: ACK_DEADLINE_SECONDS,
      retryPolicy: { initialBackoffSeconds: 0, maxBackoffSeconds: 0, jitter: 0 },
    });
    for (let i = 0; i < HELD; i += 1000) {
      await client.publish(
        "lapse",
        Array.from({ length: 1000 }, (_, j) => ({ id: `e-${i + j}`, source: "test", type: "t.v1.E" })),
      );
    }
    // The silent consumer: takes everything and never settles, and its stream stays up.
    const silent = await StreamProbe.open(client, "lapse.sub", HELD);
    await silent.waitForDeliveries(HELD, 30_000);
    const heldAt = Date.now();
    // Another consumer with room: redeliveries go to either stream.
    const other = await StreamProbe.open(client, "lapse.sub", HELD);
    const redelivered = () =>
      new Set(
        [...silent.deliveries.slice(HELD), ...other.deliveries]
          .filter((d) => d.deliveryAttempt >= 2)
          .map((d) => d.event?.id),
      ).size;
    // Before, a sweep failed 500 lapsed leases a second (every broker on the same rows): 20 s.
    await until(
      () => redelivered() === HELD,
      "every lapsed lease redelivered",
      (ACK_DEADLINE_SECONDS + 8) * 1000,
    );
    expect(Date.now() - heldAt).toBeLessThan((ACK_DEADLINE_SECONDS + 8) * 1000);
    silent.cancel();
    other.cancel();
  }, 90_000);
});
