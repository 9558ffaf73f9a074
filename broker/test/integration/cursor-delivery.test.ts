// Delivery core v2 against a real Postgres and two real brokers: a subscription's cursor never
// skips an event that commits late and never leases one twice, whatever commits, rolls back or
// dies mid-publish; a long transaction on one topic holds back nothing on another; seek moves a
// subscription to a time or a position, refuses to go before what retention kept, and takes
// effect on streams already open.

import { AckStatus, type Delivery } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { outboxPublish } from "@pgmesh/sdk";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker, useTestBroker } from "../support/broker.ts";
import { StreamProbe } from "../support/stream-probe.ts";
import { until } from "../support/until.ts";

const t = useTestBroker();
let sql: postgres.Sql;
let second: TestBroker;
beforeAll(async () => {
  sql = postgres(t.db.url, { max: 8, onnotice: () => {} });
  second = await startTestBroker(t.db.url);
});
afterAll(async () => {
  await second?.stop();
  await sql.end();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Acks everything a stream receives, and keeps every delivery it saw. */
function ackingProbe(probe: StreamProbe): { seen: Delivery[]; stop: () => void } {
  const seen: Delivery[] = [];
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      const fresh = probe.deliveries.splice(0);
      if (fresh.length > 0) {
        seen.push(...fresh);
        probe.ack(fresh.map((d) => d.ackId));
      }
      await sleep(5);
    }
  };
  void loop();
  return {
    seen,
    stop: () => {
      stopped = true;
    },
  };
}

describe("the cursor", () => {
  it("leases exactly the committed events, each once, under concurrent publishes, slow and rolled-back outbox transactions and killed publishes", async () => {
    const topic = "cur.race";
    await t.mesh.client.createTopic(topic);
    await t.mesh.client.createSubscription("cur.race.sub", topic, { ackDeadlineSeconds: 60 });
    // Every publish statement sleeps 0-150 ms after it took its seqs and before it commits (a
    // trigger in this test's database), so that commits race seq order as they would under load.
    await sql`CREATE FUNCTION pg_temp_sleep_a_little() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(random() * 0.15); RETURN NULL; END $$`;
    await sql`CREATE TRIGGER slow_commit AFTER INSERT ON pgmesh.events
      FOR EACH STATEMENT EXECUTE FUNCTION pg_temp_sleep_a_little()`;
    // Which lease batches a publish wrote itself (its hand-off to an idle stream): both paths race here.
    await sql`CREATE TABLE race_xacts (kind text, xact xid8)`;
    await sql`CREATE FUNCTION pg_temp_note_xact() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO race_xacts VALUES (TG_TABLE_NAME, pg_current_xact_id()); RETURN NULL; END $$`;
    await sql`CREATE TRIGGER note_publish AFTER INSERT ON pgmesh.events
      FOR EACH STATEMENT EXECUTE FUNCTION pg_temp_note_xact()`;
    await sql`CREATE TRIGGER note_batch AFTER INSERT ON pgmesh.lease_batches
      FOR EACH ROW EXECUTE FUNCTION pg_temp_note_xact()`;
    // Small windows make small lease batches, so the cursor moves many times while commits race.
    const streams = [
      ackingProbe(await StreamProbe.open(t.mesh.client, "cur.race.sub", 7, "one")),
      ackingProbe(await StreamProbe.open(second.client, "cur.race.sub", 5, "two")),
    ];
    let n = 0;
    const nextId = () => `e-${n++}`;
    const attempted: string[] = [];
    const work: Promise<unknown>[] = [];
    // Publishes through both brokers, in batches that group-commit with each other.
    for (const broker of [t.mesh, second]) {
      work.push(
        (async () => {
          for (let i = 0; i < 40; i++) {
            const ids = Array.from({ length: 1 + (i % 9) }, nextId);
            attempted.push(...ids);
            await broker.client
              .publish(
                topic,
                ids.map((id) => ({ id, source: "race", type: "t" })),
              )
              .catch(() => {});
            if (i % 5 === 0) await sleep(Math.random() * 50);
          }
        })(),
      );
    }
    // Application transactions that publish through the outbox and sleep 0-2 s before they commit
    // or roll back: their events reach the topic whenever the relay sees them commit.
    const rolledBack = new Set<string>();
    for (let w = 0; w < 6; w++) {
      work.push(
        (async () => {
          for (let i = 0; i < 3; i++) {
            const ids = [nextId(), nextId()];
            const rollback = Math.random() < 0.3;
            await sql
              .begin(async (tx) => {
                await outboxPublish(
                  tx as never,
                  topic,
                  ids.map((id) => ({ id, source: "outbox", type: "t" })),
                );
                await tx`SELECT pg_sleep(${Math.random() * 2})`;
                if (rollback) throw new Error("rolled back on purpose");
              })
              .catch(() => {
                for (const id of ids) rolledBack.add(id);
              });
          }
        })(),
      );
    }
    // Publishes killed mid-statement: the broker's backend running the publish is terminated.
    work.push(
      (async () => {
        for (let i = 0; i < 10; i++) {
          await sleep(150);
          await sql`
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'pgmesh-broker'
              AND query LIKE '%INSERT INTO pgmesh.events%' AND state = 'active'`;
        }
      })(),
    );
    await Promise.all(work);
    // Everything committed is on the topic now (the relay drains the outbox within its poll).
    await until(
      async () => Number((await sql`SELECT count(*)::int AS n FROM pgmesh.outbox`)[0]?.n) === 0,
      "the outbox to drain",
      20_000,
    );
    // Under the race the streams are rarely idle, so a publish rarely finds a dispatcher to hand off
    // to. Then both brokers publish one event at a time with pauses, their commits still slowed and
    // racing each other's: the idle streams take hand-offs, fenced against the other broker's leases.
    await Promise.all(
      [t.mesh, second].map(async (broker) => {
        for (let i = 0; i < 8; i++) {
          await sleep(120 + Math.random() * 60);
          const id = nextId();
          attempted.push(id);
          await broker.client.publish(topic, [{ id, source: "race", type: "t" }]);
        }
      }),
    );
    await sql`DROP TRIGGER slow_commit ON pgmesh.events`;
    await sql`DROP TRIGGER note_publish ON pgmesh.events`;
    await sql`DROP TRIGGER note_batch ON pgmesh.lease_batches`;
    const committed = (
      await sql`SELECT id FROM pgmesh.events WHERE topic_id = pgmesh.topic_id(${topic})`
    ).map((r) => r.id as string);
    expect(committed.length).toBeGreaterThan(100);
    for (const id of committed) expect(rolledBack.has(id)).toBe(false);
    const firstLeases = () =>
      streams
        .flatMap((s) => s.seen)
        .filter((d) => d.deliveryAttempt === 1)
        .map((d) => d.event?.id as string);
    await until(
      () => firstLeases().length >= committed.length,
      "every committed event's first lease",
      30_000,
    );
    await sleep(300);
    for (const s of streams) s.stop();
    const leased = firstLeases();
    // None skipped, none leased twice by the cursor.
    expect(leased.length).toBe(committed.length);
    expect(new Set(leased)).toEqual(new Set(committed));
    // Both ways of leasing took part: publishes handing off, and leases from the cursor after them.
    const [paths] = await sql`
      SELECT count(*) FILTER (WHERE b.xact IN (SELECT xact FROM race_xacts WHERE kind = 'events'))::int AS handed,
             count(*) FILTER (WHERE b.xact NOT IN (SELECT xact FROM race_xacts WHERE kind = 'events'))::int AS read
      FROM race_xacts b WHERE b.kind = 'lease_batches'`;
    expect(paths?.handed).toBeGreaterThan(0);
    expect(paths?.read).toBeGreaterThan(0);
  });

  it("is not held back on topic B by an idle transaction holding an xid, nor by a 30 s transaction on topic A", async () => {
    await t.mesh.client.createTopic("cur.a");
    await t.mesh.client.createTopic("cur.b");
    await t.mesh.client.createSubscription("cur.b.sub", "cur.b");
    const probe = await StreamProbe.open(t.mesh.client, "cur.b.sub", 100);
    const latencies = async (count: number, prefix: string) => {
      const out: number[] = [];
      for (let i = 0; i < count; i++) {
        const before = probe.deliveries.length;
        const sent = Date.now();
        await t.mesh.client.publish("cur.b", [{ id: `${prefix}-${i}`, source: "s", type: "t" }]);
        await probe.until(() => probe.deliveries.length > before, `delivery of ${prefix}-${i}`);
        out.push(Date.now() - sent);
        probe.ack(probe.deliveries.slice(before).map((d) => d.ackId));
      }
      return out.sort((a, b) => a - b)[Math.floor(count / 2)] as number;
    };
    const baseline = await latencies(20, "base");

    // An idle-in-transaction session that holds an xid, and a transaction that publishes to topic A
    // the way the broker does (the topic's lock, an event) and stays open for 30 s.
    const idle = await sql.reserve();
    const long = await sql.reserve();
    try {
      await idle`BEGIN`;
      await idle`SELECT pg_current_xact_id()`;
      await long`BEGIN`;
      await long`SELECT name FROM pgmesh.topics WHERE name = 'cur.a' FOR NO KEY UPDATE`;
      await long`INSERT INTO pgmesh.events (topic_id, id, source, type) VALUES (pgmesh.topic_id('cur.a'), 'slow', 's', 't')`;
      const held = long`SELECT pg_sleep(30)`.execute();
      await sleep(200);
      const during = await latencies(20, "during");
      // Same order of magnitude as without them: nothing waits for those transactions.
      expect(during).toBeLessThan(Math.max(200, baseline * 5));
      await held;
      await long`COMMIT`;
      await idle`ROLLBACK`;
    } finally {
      idle.release();
      long.release();
    }
    probe.cancel();
  }, 60_000);
});

describe("seek", () => {
  const publish = (topic: string, ids: string[]) =>
    t.mesh.client.publish(
      topic,
      ids.map((id) => ({ id, source: "s", type: "t" })),
    );
  const position = async (topic: string, id: string) =>
    Number(
      (await sql`SELECT seq FROM pgmesh.events WHERE topic_id = pgmesh.topic_id(${topic}) AND id = ${id}`)[0]
        ?.seq,
    );

  it("moves a subscription to a position or a time, counting what is before it as acked, while a stream is open", async () => {
    const { client } = t.mesh;
    await client.createTopic("seek.t");
    await client.createSubscription("seek.s", "seek.t");
    await publish("seek.t", ["a", "b", "c"]);
    await sleep(50);
    const middle = new Date();
    await sleep(50);
    await publish("seek.t", ["d", "e"]);
    const probe = await StreamProbe.open(client, "seek.s", 2);
    const firstTwo = await probe.waitForDeliveries(2);
    expect(firstTwo.map((d) => d.event?.id)).toEqual(["a", "b"]);

    // Back to "b", with "a" and "b" held by the stream: their leases are dropped (STALE at the ack).
    const seek = await client.seekSubscription("seek.s", { position: await position("seek.t", "b") });
    expect(seek).toEqual({ position: await position("seek.t", "b"), droppedDeliveries: 2 });
    const stale = await probe.ackAndWait(firstTwo.map((d) => d.ackId));
    expect(stale.map((r) => r.status)).toEqual([AckStatus.ACK_STATUS_STALE, AckStatus.ACK_STATUS_STALE]);
    const again = await probe.waitForDeliveries(4);
    expect(again.slice(2).map((d) => d.event?.id)).toEqual(["b", "c"]);
    await probe.ackAndWait(again.slice(2).map((d) => d.ackId));
    const rest = await probe.waitForDeliveries(6);
    expect(rest.slice(4).map((d) => d.event?.id)).toEqual(["d", "e"]);
    await probe.ackAndWait(rest.slice(4).map((d) => d.ackId));

    // To a time: the first event published at or after it is "d", acked already and delivered again.
    await client.seekSubscription("seek.s", middle);
    const fromTime = await probe.waitForDeliveries(8);
    expect(fromTime.slice(6).map((d) => d.event?.id)).toEqual(["d", "e"]);
    await probe.ackAndWait(fromTime.slice(6).map((d) => d.ackId));

    // To now: nothing left; stats agree.
    await client.seekSubscription("seek.s", "now");
    const stats = await client.subscriptionStats("seek.s");
    expect([stats.backlog, stats.cursorLag, stats.inFlight]).toEqual([0, 0, 0]);
    // And back to the earliest retained event, all five again.
    await client.seekSubscription("seek.s", "earliest");
    probe.flow(10);
    const all = await probe.waitForDeliveries(13);
    expect(all.slice(8).map((d) => d.event?.id)).toEqual(["a", "b", "c", "d", "e"]);
    probe.cancel();
  });

  it("starts a subscription at a position, the earliest event or a time, and refuses what retention no longer keeps", async () => {
    const { client } = t.mesh;
    await client.createTopic("seek.r", { retentionSeconds: 60 });
    await client.createSubscription("seek.r.keep", "seek.r", { start: "earliest" });
    await publish("seek.r", ["old-1", "old-2", "new-1", "new-2"]);
    await client.createSubscription("seek.r.from", "seek.r", {
      start: { position: await position("seek.r", "old-2") },
    });
    await client.createSubscription("seek.r.now", "seek.r");
    await client.createSubscription("seek.r.early", "seek.r", { start: "earliest" });
    const ids = async (sub: string, count: number) => {
      const probe = await StreamProbe.open(client, sub, 10);
      const got = (await probe.waitForDeliveries(count)).map((d) => d.event?.id);
      await probe.ackAndWait(probe.deliveries.map((d) => d.ackId));
      probe.cancel();
      return got;
    };
    expect(await ids("seek.r.from", 3)).toEqual(["old-2", "new-1", "new-2"]);
    expect(await ids("seek.r.early", 4)).toEqual(["old-1", "old-2", "new-1", "new-2"]);
    expect((await client.subscriptionStats("seek.r.now")).cursorLag).toBe(0);

    // Retention deletes the two old events (every subscription has passed them).
    await ids("seek.r.keep", 4);
    await sql`UPDATE pgmesh.events SET published_at = now() - interval '1 hour' WHERE topic_id = pgmesh.topic_id('seek.r') AND id LIKE 'old-%'`;
    const { TableUpkeep } = await import("../../src/store/upkeep.ts");
    // This pass, or the broker's own upkeep if it ran first, deletes them.
    await new TableUpkeep(sql, {
      dedupWindowSeconds: 86_400,
      auditRetentionDays: 90,
      onError: () => {},
    }).runOnce();
    await until(
      async () =>
        Number(
          (
            await sql`SELECT count(*)::int AS n FROM pgmesh.events WHERE topic_id = pgmesh.topic_id('seek.r') AND id LIKE 'old-%'`
          )[0]?.n,
        ) === 0,
      "retention to delete the old events",
    );
    const oldest = await position("seek.r", "new-1");
    const refused = await client.seekSubscription("seek.r.now", { position: oldest - 1 }).then(
      () => undefined,
      (error: { code: number; details: string }) => error,
    );
    expect(refused?.code).toBe(9); // FAILED_PRECONDITION
    expect(refused?.details).toContain(`oldest retained event (position ${oldest}`);
    const beforeRetained = await client
      .seekSubscription("seek.r.now", new Date(Date.now() - 3_600_000 * 2))
      .then(
        () => undefined,
        (error: { code: number }) => error,
      );
    expect(beforeRetained?.code).toBe(9);
    // From the oldest retained event on, it goes.
    expect((await client.seekSubscription("seek.r.now", { position: oldest })).position).toBe(oldest);
    expect(await ids("seek.r.now", 2)).toEqual(["new-1", "new-2"]);
    // A position that is not one is refused as an argument.
    const bad = await client.seekSubscription("seek.r.now", { position: 0 }).then(
      () => undefined,
      (error: { code: number }) => error,
    );
    expect(bad?.code).toBe(3); // INVALID_ARGUMENT
  });
});
