// A Subscribe stream's life outside the happy path: idle heartbeats, a client that never opens,
// a client that half-closes.
import { status } from "@grpc/grpc-js";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
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
