// The database goes away (connections dropped, then a partition) and comes back: calls fail fast
// with UNAVAILABLE, /readyz answers 503 at once, streams stay open (acks sent meanwhile take effect
// when it is back), and everything resumes by itself. Postgres is reached through a proxy the test can cut.
import { status } from "@grpc/grpc-js";
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { PgmeshClient } from "@pgmesh/sdk";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";
import { TcpProxy } from "../support/tcp-proxy.ts";
import { until } from "../support/until.ts";

let db: TestDatabase;
let proxy: TcpProxy;
let mesh: TestBroker;

beforeAll(async () => {
  db = await createTestDatabase();
  const target = new URL(db.url);
  proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
  mesh = await startTestBroker(proxy.urlFor(db.url), {
    PGMESH_DB_CONNECT_TIMEOUT_MS: "1000",
    PGMESH_DB_STATEMENT_TIMEOUT_MS: "2000",
  });
  once = new PgmeshClient(mesh.address, { publishRetry: false });
  await mesh.client.createTopic("outage");
  await mesh.client.createSubscription("outage.sub", "outage", { ackDeadlineSeconds: 60 });
});

// A test that fails while the database is cut must not leave the next one without it.
afterEach(async () => {
  if (proxy.mode !== "pass") await proxy.restore();
});

afterAll(async () => {
  await proxy?.restore();
  once?.close();
  await mesh?.stop();
  await proxy?.close();
  await db?.drop();
});

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await work;
  return { value, ms: Date.now() - started };
}

async function readyz(): Promise<number> {
  return (await fetch(`http://${mesh.broker.metricsAddress}/readyz`)).status;
}

async function retryOnDeadlock<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if ((error as { code?: string }).code !== "40P01" || attempt === 5) throw error;
    }
  }
}

// Without the SDK's own retries, which would hide how fast the broker answers.
let once: PgmeshClient;
const publishOne = (id: string, topic = "outage") => once.publish(topic, [{ id, source: "test", type: "t" }]);

/** Publishes `id` as soon as the database takes it again, and waits for it on `stream`. */
async function publishOnceBackAndReceive(stream: StreamProbe, topic: string, id: string) {
  await until(
    () =>
      publishOne(id, topic).then(
        () => true,
        () => false,
      ),
    `a publish of ${id} to succeed after the outage`,
    15_000,
  );
  await stream.until(() => stream.deliveries.some((d) => d.event?.id === id), id, 15_000);
  return stream.deliveries.find((d) => d.event?.id === id);
}

/**
 * Three events delivered on a stream of a new subscription, then the database cut and the three
 * acked: the acks wait on the database. Returns the stream and the acks' answers (awaited later).
 */
async function ackWhileCut(topic: string, ackDeadlineSeconds: number) {
  await mesh.client.createTopic(topic);
  await mesh.client.createSubscription(`${topic}.sub`, topic, { ackDeadlineSeconds });
  const stream = await StreamProbe.open(mesh.client, `${topic}.sub`);
  await mesh.client.publish(
    topic,
    [1, 2, 3].map((i) => ({ id: `${topic}-${i}`, source: "test", type: "t" })),
  );
  const held = await stream.waitForDeliveries(3);
  await proxy.cut("refuse");
  const answers = stream.settleAndWait(() => stream.ack(held.map((d) => d.ackId)), 3);
  answers.catch(() => undefined); // awaited by the test, unless an expectation fails first
  return { stream, answers };
}

/** "open" if the stream has not ended within `ms`; else how it ended (its status). */
const stateAfter = (stream: StreamProbe, ms = 10) =>
  Promise.race([stream.ended, sleep(ms).then(() => "open" as const)]);

const ACKED_THREE = [AckStatus.ACK_STATUS_ACKED, AckStatus.ACK_STATUS_ACKED, AckStatus.ACK_STATUS_ACKED];

describe("a database outage", () => {
  it("fails calls fast with UNAVAILABLE, answers /readyz 503 at once, and resumes by itself", async () => {
    const stream = await StreamProbe.open(mesh.client, "outage.sub");
    await publishOne("before");
    const [first] = await stream.waitForDeliveries(1);
    expect((await stream.ackAndWait([first?.ackId ?? ""]))[0]?.status).toBe(AckStatus.ACK_STATUS_ACKED);
    expect(await readyz()).toBe(200);

    for (const mode of ["refuse", "blackhole"] as const) {
      await proxy.cut(mode);
      const publish = await timed(rejection(publishOne(`during-${mode}`)));
      expect(publish.value.code, `${mode}: ${publish.value.details}`).toBe(status.UNAVAILABLE);
      expect(publish.value.details).toBe("the database is unavailable right now; retry shortly");
      expect(publish.ms).toBeLessThan(4_000);
      const admin = await timed(rejection(mesh.client.getTopic("outage")));
      expect(admin.value.code, `${mode}: ${admin.value.details}`).toBe(status.UNAVAILABLE);
      expect(admin.ms).toBeLessThan(4_000);
      const probe = await timed(readyz());
      expect(probe.value).toBe(503);
      expect(probe.ms).toBeLessThan(1_500);
      await proxy.restore();
      await until(() => readyz().then((code) => code === 200), "ready again", 15_000);
    }

    // The stream rode out both outages, and gets what was published after them.
    expect(await stateAfter(stream, 100)).toBe("open");
    const consumer = stream;
    const after = await publishOnceBackAndReceive(consumer, "outage", "after");
    expect((await consumer.ackAndWait([after?.ackId ?? ""]))[0]?.status).toBe(AckStatus.ACK_STATUS_ACKED);
    // Nothing published during the outage was stored.
    expect(consumer.deliveries.map((d) => d.event?.id)).not.toContain("during-refuse");
    await consumer.close();
  }, 90_000);

  it("keeps every stream open when the broker's connections are terminated", async () => {
    await mesh.client.createTopic("terminated");
    await mesh.client.createSubscription("terminated.sub", "terminated");
    const streams = await Promise.all(
      [1, 2, 3].map(() => StreamProbe.open(mesh.client, "terminated.sub", 2)),
    );
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const killed = await sql`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()`;
      expect(killed[0]?.n).toBeGreaterThan(0);
    } finally {
      await sql.end();
    }
    await until(
      () =>
        mesh.client
          .publish(
            "terminated",
            Array.from({ length: 6 }, (_, i) => ({ id: `t${i}`, source: "test", type: "t" })),
          )
          .then(
            () => true,
            () => false,
          ),
      "a publish after the connections were terminated",
      10_000,
    );
    await until(() => streams.reduce((n, s) => n + s.deliveries.length, 0) >= 6, "six deliveries", 10_000);
    for (const stream of streams) {
      expect(await stateAfter(stream)).toBe("open");
      await stream.ackAndWait(stream.deliveries.map((d) => d.ackId));
      await stream.close();
    }
  }, 60_000);

  it("applies acks sent while the database is away once it is back: the stream stays open, nothing is redelivered", async () => {
    const { stream, answers } = await ackWhileCut("held", 60);
    // The acks fail against the database for a while: the stream must not end over it, since
    // ending it would hand all three back for a second delivery.
    await sleep(1_500);
    expect(await stateAfter(stream)).toBe("open");
    expect(stream.ackResults).toHaveLength(0);
    await proxy.restore();
    expect((await answers).map((r) => r.status)).toEqual(ACKED_THREE);
    // The same stream goes on: the next event comes to it, and the acked three never come again.
    const after = await publishOnceBackAndReceive(stream, "held", "held-after");
    await stream.ackAndWait([after?.ackId ?? ""]);
    await sleep(500);
    // In any order (the subscription is not ordered), and each once.
    expect(stream.deliveries.map((d) => d.event?.id).sort()).toEqual([
      "held-1",
      "held-2",
      "held-3",
      "held-after",
    ]);
    await stream.close();
  }, 60_000);

  it("applies acks held through an outage longer than the ack deadline, before any sweep counts their leases lapsed", async () => {
    const { stream, answers } = await ackWhileCut("long", 1);
    // Three ack deadlines without a database: the leases have run out by its clock.
    await sleep(3_000);
    expect(await stateAfter(stream)).toBe("open");
    await proxy.restore();
    expect((await answers).map((r) => r.status)).toEqual(ACKED_THREE);
    // Sweeps run every second here: had one failed the three leases, they would come again now.
    await sleep(2_500);
    expect(stream.deliveries.map((d) => d.event?.id).sort()).toEqual(["long-1", "long-2", "long-3"]);
    await stream.close();
  }, 60_000);

  it("puts back the leases of a settle whose transaction failed instead of stranding them", async () => {
    await mesh.client.createTopic("strand");
    await mesh.client.createSubscription("strand.sub", "strand", { ackDeadlineSeconds: 600 });
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      // The ack's completion (or deletion) of the job fails inside Postgres, so its transaction rolls back.
      // Creating a trigger locks pg-boss's job table and each of its partitions, in an order the
      // broker's own transactions (still finishing the previous test's work) may take the other
      // way round: Postgres then breaks the deadlock by failing one side, and the test tries again.
      await retryOnDeadlock(() =>
        sql.unsafe(`
        CREATE SEQUENCE public.refusals;
        CREATE FUNCTION public.refuse_completion() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          -- Only the first statement (the ack) is refused; a sequence is not rolled back with it.
          IF nextval('public.refusals') = 1 THEN RAISE EXCEPTION 'completion refused by the test'; END IF;
          RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END $$;
        CREATE TRIGGER refuse_completion BEFORE UPDATE ON pgboss.job FOR EACH ROW
          WHEN (NEW.state = 'completed') EXECUTE FUNCTION public.refuse_completion();
        CREATE TRIGGER refuse_deletion BEFORE DELETE ON pgboss.job FOR EACH ROW
          EXECUTE FUNCTION public.refuse_completion();
        -- An ack of a leased batch's event clears its bit (or deletes the batch) instead.
        CREATE TRIGGER refuse_batch_settle BEFORE UPDATE OR DELETE ON pgmesh.lease_batches FOR EACH ROW
          EXECUTE FUNCTION public.refuse_completion();`),
      );
      const holder = await StreamProbe.open(mesh.client, "strand.sub");
      await mesh.client.publish("strand", [{ id: "stuck", source: "test", type: "t" }]);
      const [delivery] = await holder.waitForDeliveries(1);
      holder.ack([delivery?.ackId ?? ""]);
      await sleep(500);
      await sql.unsafe(
        "DROP TRIGGER refuse_completion ON pgboss.job; DROP TRIGGER refuse_deletion ON pgboss.job; DROP TRIGGER refuse_batch_settle ON pgmesh.lease_batches",
      );
      // Redelivered well before the 600 s ack deadline, to this stream or a new one.
      const other = await StreamProbe.open(mesh.client, "strand.sub");
      await until(
        () => [...holder.deliveries, ...other.deliveries].filter((d) => d.event?.id === "stuck").length >= 2,
        "the redelivery",
        10_000,
      );
      other.cancel();
      holder.cancel();
    } finally {
      await sql.unsafe(
        "DROP TRIGGER IF EXISTS refuse_completion ON pgboss.job; DROP TRIGGER IF EXISTS refuse_deletion ON pgboss.job; DROP TRIGGER IF EXISTS refuse_batch_settle ON pgmesh.lease_batches",
      );
      await sql.end();
    }
  }, 60_000);
});
