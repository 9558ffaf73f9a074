// Concurrent publishes share transactions (group commit) without mixing up their results.
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe } from "../support/stream-probe.ts";

const t = useTestBroker();
const event = (id: string) => ({ id, source: "svc", type: "t.v1.Thing" });

describe("group commit of publishes", () => {
  it("stores 300 concurrent single-event publishes in far fewer transactions, each delivered once", async () => {
    const { client } = t.mesh;
    await client.createTopic("gc.many");
    await client.createSubscription("gc.many.sub", "gc.many");
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => client.publish("gc.many", [event(`e-${i}`)])),
    );
    expect(results.map(([r]) => r)).toEqual(
      Array.from({ length: 300 }, (_, i) => ({ id: `e-${i}`, duplicate: false })),
    );
    // Each stored row's xmin is the transaction that inserted it.
    const sql = postgres(t.db.url, { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql`SELECT count(*)::int AS events, count(DISTINCT xmin::text)::int AS transactions
        FROM pgmesh.events WHERE topic_id = pgmesh.topic_id('gc.many')`;
      expect(row?.events).toBe(300);
      expect(row?.transactions).toBeLessThan(150);
    } finally {
      await sql.end();
    }
    const probe = await StreamProbe.open(client, "gc.many.sub", 1000);
    const deliveries = await probe.waitForDeliveries(300);
    expect(new Set(deliveries.map((d) => d.event?.id)).size).toBe(300);
    probe.cancel();
  });

  it("resolves a repeat across concurrent requests to exactly one stored event", async () => {
    const { client } = t.mesh;
    await client.createTopic("gc.dup");
    const results = await Promise.all(
      Array.from({ length: 20 }, () => client.publish("gc.dup", [event("same")])),
    );
    expect(results.filter(([r]) => r?.duplicate === false)).toHaveLength(1);
    expect(results.filter(([r]) => r?.duplicate === true)).toHaveLength(19);
  });

  it("fails a request on a missing topic alone; the requests grouped with it succeed", async () => {
    const { client } = t.mesh;
    await client.createTopic("gc.ok");
    const calls = Array.from({ length: 40 }, (_, i) =>
      i % 4 === 0
        ? client.publish("gc.missing", [event(`m-${i}`)])
        : client.publish("gc.ok", [event(`k-${i}`)]),
    );
    const settled = await Promise.allSettled(calls);
    settled.forEach((s, i) => {
      if (i % 4 === 0) expect(s.status).toBe("rejected");
      else expect(s.status).toBe("fulfilled");
    });
    const error = await rejection(client.publish("gc.missing", [event("again")]));
    expect(error.code).toBe(status.NOT_FOUND);
    expect(error.details).toBe("topic gc.missing does not exist");
  });
});
