// A Subscribe stream's life outside the happy path: idle heartbeats, a client that never opens,
// a client that half-closes.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

let db: TestDatabase;
let mesh: TestBroker;

beforeAll(async () => {
  db = await createTestDatabase();
  mesh = await startTestBroker(db.url, { PGMESH_HEARTBEAT_MS: "200", PGMESH_OPEN_TIMEOUT_MS: "300" });
  await mesh.client.createTopic("life");
  await mesh.client.createSubscription("life.sub", "life");
});

afterAll(async () => {
  await mesh?.stop();
  await db?.drop();
});

describe("stream lifecycle", () => {
  it("sends heartbeats on an idle stream and announces their interval", async () => {
    const probe = await StreamProbe.open(mesh.client, "life.sub");
    expect(probe.opened?.heartbeatInterval).toEqual({ seconds: 0, nanos: 200_000_000 });
    await sleep(1000);
    expect(probe.heartbeats).toBeGreaterThanOrEqual(3);
    await probe.close();
  });

  it("ends a stream that never sends open with INVALID_ARGUMENT", async () => {
    const probe = StreamProbe.raw(mesh.client);
    expect(await probe.ended).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "no `open` message arrived; send `open` first",
    });
  });

  it("finishes cleanly when the client half-closes, releasing what it held", async () => {
    await mesh.client.publish("life", [{ id: "held", source: "s", type: "t" }]);
    const probe = await StreamProbe.open(mesh.client, "life.sub");
    await probe.waitForDeliveries(1);
    await probe.close();
    expect((await probe.ended).code).toBe(status.OK);
    const next = await StreamProbe.open(mesh.client, "life.sub");
    const [again] = await next.waitForDeliveries(1);
    expect(again?.event?.id).toBe("held");
    expect(again?.deliveryAttempt).toBe(2);
    await next.close();
  });
});
