// Bounded tables: what an ack, a topic's retention and the idempotency window leave behind.
import { AckStatus } from "@pgmesh/sdk/gen/pgmesh/v1/subscriber";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { StreamProbe } from "../support/stream-probe.ts";

const t = useTestBroker();
let sql: postgres.Sql;
beforeAll(() => {
  sql = postgres(t.db.url, { max: 2, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end();
});

const jobStates = async (subscription: string) => {
  const rows = await sql`SELECT j.state, count(*)::int AS n FROM pgboss.job j
    JOIN pgmesh.subscriptions s ON s.queue = j.name WHERE s.name = ${subscription} GROUP BY j.state`;
  return Object.fromEntries(rows.map((r) => [r.state as string, r.n as number]));
};

async function ackAll(subscription: string, count: number) {
  const probe = await StreamProbe.open(t.mesh.client, subscription);
  const deliveries = await probe.waitForDeliveries(count);
  const results = await probe.ackAndWait(deliveries.map((d) => d.ackId));
  probe.cancel();
  return results.map((r) => r.status);
}

describe("acked deliveries", () => {
  it("are gone at the ack when the subscription keeps none, and kept when it keeps them", async () => {
    const { client } = t.mesh;
    await client.createTopic("ret.acks");
    await client.createSubscription("ret.acks.none", "ret.acks", { ackedRetentionSeconds: 0 });
    await client.createSubscription("ret.acks.kept", "ret.acks", { ackedRetentionSeconds: 3600 });
    await client.publish(
      "ret.acks",
      Array.from({ length: 10 }, (_, i) => ({ id: `e-${i}`, source: "test", type: "t.v1.E" })),
    );
    expect(await jobStates("ret.acks.none")).toEqual({ created: 10 });
    expect(new Set(await ackAll("ret.acks.none", 10))).toEqual(new Set([AckStatus.ACK_STATUS_ACKED]));
    expect(new Set(await ackAll("ret.acks.kept", 10))).toEqual(new Set([AckStatus.ACK_STATUS_ACKED]));
    expect(await jobStates("ret.acks.none")).toEqual({});
    expect(await jobStates("ret.acks.kept")).toEqual({ completed: 10 });
  });
});
