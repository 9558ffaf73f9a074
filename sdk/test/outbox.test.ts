// Transactional publish through the outbox, with postgres.js and with node-postgres, against a
// real broker on the same database.

import { Topic } from "@pgmesh/proto/pgmesh/v1/admin";
import { defineEvent, outboxPublish, outboxPublishEvents } from "@pgmesh/sdk";
import pg from "pg";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../../broker/test/support/broker.ts";
import { StreamProbe, sleep } from "../../broker/test/support/stream-probe.ts";

const t = useTestBroker();
let sql: postgres.Sql;
const Placed = defineEvent("shop", "pgmesh.v1.Topic", Topic);

beforeAll(async () => {
  sql = postgres(t.db.url, { max: 2, onnotice: () => {} });
  await t.mesh.client.createTopic("shop");
  await t.mesh.client.createSubscription("shop.sub", "shop");
  // The application's own table, in the same database.
  await sql`CREATE TABLE orders (id text PRIMARY KEY)`;
});

afterAll(async () => {
  await sql?.end();
});

describe("outbox", () => {
  it("postgres.js: a committed transaction's events are delivered, a rolled-back one's never", async () => {
    const probe = await StreamProbe.open(t.mesh.client, "shop.sub");
    const [committedId] = await sql.begin(async (tx) => {
      await tx`INSERT INTO orders VALUES ('o-1')`;
      return outboxPublishEvents(tx, Placed, [
        { message: { name: "o-1", createTime: undefined, retention: undefined }, subject: "order/o-1" },
      ]);
    });
    await sql
      .begin(async (tx) => {
        await tx`INSERT INTO orders VALUES ('o-2')`;
        await outboxPublishEvents(tx, Placed, [
          { message: { name: "o-2", createTime: undefined, retention: undefined } },
        ]);
        throw new Error("the application changes its mind");
      })
      .catch(() => {});
    const [delivery] = await probe.waitForDeliveries(1);
    expect(delivery?.event?.id).toBe(committedId);
    expect(delivery?.event?.subject).toBe("order/o-1");
    expect(Topic.decode(delivery?.event?.data?.value ?? new Uint8Array()).name).toBe("o-1");
    await sleep(1000);
    expect(probe.deliveries).toHaveLength(1);
    expect(await sql`SELECT id FROM orders ORDER BY id`).toEqual([{ id: "o-1" }]);
    expect(await sql`SELECT count(*)::int AS n FROM pgmesh.outbox`).toEqual([{ n: 0 }]);
    await probe.ackAndWait([delivery?.ackId ?? ""]);
    await probe.close();
  });

  it("node-postgres: the same, inside BEGIN/COMMIT and BEGIN/ROLLBACK", async () => {
    const client = new pg.Client({ connectionString: t.db.url });
    await client.connect();
    try {
      await client.query("BEGIN");
      const [id] = await outboxPublishEvents(client, Placed, [
        { message: { name: "pg-1", createTime: undefined, retention: undefined } },
      ]);
      await client.query("COMMIT");
      await client.query("BEGIN");
      await outboxPublishEvents(client, Placed, [
        { message: { name: "pg-2", createTime: undefined, retention: undefined } },
      ]);
      await client.query("ROLLBACK");
      const probe = await StreamProbe.open(t.mesh.client, "shop.sub");
      const [delivery] = await probe.waitForDeliveries(1);
      expect(delivery?.event?.id).toBe(id);
      await sleep(1000);
      expect(probe.deliveries).toHaveLength(1);
      await probe.ackAndWait([delivery?.ackId ?? ""]);
      await probe.close();
    } finally {
      await client.end();
    }
  });

  it("sets aside an event the relay cannot publish, with the reason, and keeps relaying", async () => {
    await sql.begin(async (tx) => {
      await outboxPublish(tx, "no.such.topic", [{ type: "t" }]);
      await outboxPublish(tx, "shop", [{ source: "app", type: "" }]);
      await outboxPublish(tx, "shop", [{ source: "app", type: "shop.Ok", id: "fine" }]);
    });
    const probe = await StreamProbe.open(t.mesh.client, "shop.sub");
    const [delivery] = await probe.waitForDeliveries(1);
    expect(delivery?.event?.id).toBe("fine");
    const failures = await sql`SELECT topic, error FROM pgmesh.outbox_failures ORDER BY seq`;
    expect(failures).toEqual([
      { topic: "no.such.topic", error: "topic no.such.topic does not exist" },
      { topic: "shop", error: "events[0].type is required when the event has no data" },
    ]);
    await probe.close();
  });
});
