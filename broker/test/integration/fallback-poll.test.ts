// The fallback poll finds deliveries that no wake-up announced (a lost NOTIFY, another broker's
// retry falling due). It asks the queue once which subscriptions have any, and only those fetch:
// idle subscriptions cost no fetch at all, however many there are.
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { JobQueue } from "../../src/store/queue.ts";
import { useTestBroker } from "../support/broker.ts";
import { withPgBoss } from "../support/pg-boss.ts";
import { until } from "../support/until.ts";

const t = useTestBroker({ PGMESH_POLL_MS: "100" });
let sql: postgres.Sql;
beforeAll(() => {
  sql = postgres(t.db.url, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await sql.end();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("the fallback poll", () => {
  it("fetches nothing for idle subscriptions, and finds a delivery no wake-up announced", async () => {
    const { client } = t.mesh;
    const names = ["poll.a", "poll.b", "poll.c"];
    await client.createTopic("poll");
    for (const name of names) await client.createSubscription(name, "poll");
    const got = new Map(names.map((name) => [name, [] as string[]]));
    const subscribers = names.map((name) =>
      client.subscribeRaw(name, (event) => {
        got.get(name)?.push(event.id);
      }),
    );
    await Promise.all(subscribers.map((s) => s.ready));
    const [published] = await client.publish("poll", [
      { type: "poll.test", data: { typeUrl: "t/blob", value: Buffer.from([1]) } },
    ]);
    await until(() => names.every((name) => got.get(name)?.length === 1), "the event on every subscription");
    await until(
      async () =>
        (await Promise.all(names.map((name) => client.subscriptionStats(name)))).every(
          (stats) => Number(stats.inFlight) === 0,
        ),
      "the acks",
    );

    // Let a fetch that an ack's wake may have started finish before counting.
    await sleep(300);
    const leases = vi.spyOn(JobQueue.prototype, "lease");
    try {
      // Ten polls with nothing to deliver: no fetch (each poll used to fetch for every subscription).
      await sleep(1000);
      expect(leases).not.toHaveBeenCalled();

      // A delivery queued behind the broker's back, with no NOTIFY: pg-boss's own insert.
      const [b] = await sql`SELECT queue FROM pgmesh.subscriptions WHERE name = 'poll.b'`;
      const [event] = await sql`SELECT seq FROM pgmesh.events WHERE id = ${published?.id ?? ""}`;
      await withPgBoss(t.db.url, async (boss) => {
        await boss.insert(b?.queue as string, [{ data: { e: String(event?.seq) } }]);
      });
      await until(() => got.get("poll.b")?.length === 2, "the poll to find the queued delivery", 5000);
      expect(new Set(leases.mock.calls.map(([queue]) => queue))).toEqual(new Set([b?.queue]));
      expect(got.get("poll.a")).toHaveLength(1);
      expect(got.get("poll.c")).toHaveLength(1);
    } finally {
      leases.mockRestore();
      await Promise.all(subscribers.map((s) => s.close()));
    }
  });
});
