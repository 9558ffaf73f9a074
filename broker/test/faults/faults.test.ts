// The fault suite (`npm run test:faults`): real faults under load, with exact accounting. A private
// Postgres cluster is stopped and restarted mid-load, its connections are terminated, and a broker
// is killed with kill -9 while another serves the same database. Every event whose publish was
// acknowledged must be delivered and acked; duplicates are counted and bounded by what consumers
// held when the faults struck.
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { PgmeshClient } from "@pgmesh/sdk";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountedLoad, type Accounting } from "../support/accounted-load.ts";
import { startTestBroker } from "../support/broker.ts";
import { type BrokerProcess, startBrokerProcess } from "../support/broker-process.ts";
import { PrivatePostgres } from "../support/private-postgres.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

const CONCURRENCY = 20;
const BROKER_ENV = {
  PGMESH_DB_CONNECT_TIMEOUT_MS: "1000",
  PGMESH_DB_STATEMENT_TIMEOUT_MS: "5000",
  PGMESH_SUPERVISE_SECONDS: "1",
  PGMESH_POLL_MS: "200",
};
let cluster: PrivatePostgres;

beforeAll(async () => {
  cluster = await PrivatePostgres.create();
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

async function database(name: string): Promise<string> {
  const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(cluster.url);
  url.pathname = `/${name}`;
  return url.toString();
}

function report(scenario: string, accounting: Accounting, faults: number): void {
  console.log(`faults: ${scenario}: ${JSON.stringify({ faults, ...accounting })}`);
  expect(accounting.acknowledged).toBeGreaterThan(0);
  expect(accounting.lost).toBe(0);
  // A duplicate is a delivery whose ack a fault swallowed: at most what the consumers held.
  expect(accounting.duplicates).toBeLessThanOrEqual(faults * CONCURRENCY * 2);
}

async function setUp(client: PgmeshClient, name: string): Promise<AccountedLoad> {
  await client.createTopic(name);
  await client.createSubscription(`${name}.sub`, name, { ackDeadlineSeconds: 3 });
  return new AccountedLoad(name, `${name}.sub`);
}

describe("database faults under load", () => {
  it("Postgres stopped and restarted mid-load: nothing acknowledged is lost", async () => {
    const mesh = await startTestBroker(await database("restart"), BROKER_ENV);
    try {
      const load = await setUp(mesh.client, "restart");
      load.consume(mesh.client, CONCURRENCY);
      load.produce(() => mesh.client);
      const faults = 2;
      for (let i = 0; i < faults; i++) {
        await sleep(2_000);
        await cluster.stop("fast");
        await sleep(2_000);
        await cluster.start();
      }
      await sleep(2_000);
      await load.stopProducing();
      report("postgres restarted", await load.settle(60_000), faults);
    } finally {
      await mesh.stop();
    }
  }, 180_000);

  it("Postgres crashed (immediate stop) mid-load: nothing acknowledged is lost", async () => {
    const mesh = await startTestBroker(await database("crash"), BROKER_ENV);
    try {
      const load = await setUp(mesh.client, "crash");
      load.consume(mesh.client, CONCURRENCY);
      load.produce(() => mesh.client);
      await sleep(2_000);
      await cluster.stop("immediate");
      await sleep(1_000);
      await cluster.start();
      await sleep(2_000);
      await load.stopProducing();
      report("postgres crashed", await load.settle(60_000), 1);
    } finally {
      await mesh.stop();
    }
  }, 180_000);

  it("the broker's connections terminated again and again: nothing acknowledged is lost", async () => {
    const url = await database("terminated");
    const mesh = await startTestBroker(url, BROKER_ENV);
    const killer = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const load = await setUp(mesh.client, "terminated");
      load.consume(mesh.client, CONCURRENCY);
      load.produce(() => mesh.client);
      const faults = 8;
      let terminated = 0;
      for (let i = 0; i < faults; i++) {
        await sleep(500);
        const [row] = await killer`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()`;
        terminated += row?.n ?? 0;
      }
      await sleep(2_000);
      await load.stopProducing();
      console.log(`faults: ${terminated} connections terminated in ${faults} rounds`);
      report("connections terminated", await load.settle(60_000), faults);
    } finally {
      await killer.end();
      await mesh.stop();
    }
  }, 180_000);
});

describe("broker faults under load", () => {
  it("a broker killed with kill -9 while another serves the same database: nothing acknowledged is lost", async () => {
    const url = await database("killed");
    const env = { ...BROKER_ENV, DATABASE_URL: url };
    const brokers = await Promise.all([startBrokerProcess({ env }), startBrokerProcess({ env })]);
    const [doomed, survivor] = brokers as [BrokerProcess, BrokerProcess];
    const doomedClient = new PgmeshClient(doomed.address);
    const survivorClient = new PgmeshClient(survivor.address);
    try {
      const load = await setUp(survivorClient, "killed");
      const onDoomed = load.consume(doomedClient, CONCURRENCY);
      load.consume(survivorClient, CONCURRENCY);
      let alive = true;
      let turn = 0;
      // Publishes alternate between the brokers while both live.
      load.produce(() => (alive && turn++ % 2 === 0 ? doomedClient : survivorClient));
      await sleep(3_000);
      doomed.child.kill("SIGKILL");
      alive = false;
      await doomed.exited;
      void onDoomed.close();
      await sleep(3_000);
      await load.stopProducing();
      report("broker killed (kill -9)", await load.settle(60_000), 1);
    } finally {
      doomedClient.close();
      survivorClient.close();
      for (const broker of brokers) broker.child.kill("SIGKILL");
    }
  }, 180_000);
  it("a broker killed with kill -9 holding leased batches: exactly its unacked events come back, its acked ones never", async () => {
    const url = await database("batches");
    const env = { ...BROKER_ENV, DATABASE_URL: url };
    const brokers = await Promise.all([startBrokerProcess({ env }), startBrokerProcess({ env })]);
    const [doomed, survivor] = brokers as [BrokerProcess, BrokerProcess];
    const doomedClient = new PgmeshClient(doomed.address);
    const survivorClient = new PgmeshClient(survivor.address);
    try {
      await survivorClient.createTopic("batches");
      await survivorClient.createSubscription("batches.sub", "batches", {
        ackDeadlineSeconds: 2,
        retryPolicy: { initialBackoffSeconds: 0, maxBackoffSeconds: 0, jitter: 0 },
      });
      const ids = Array.from({ length: 600 }, (_, i) => `e-${i}`);
      await survivorClient.publish(
        "batches",
        ids.map((id) => ({ id, source: "test", type: "t.v1.E" })),
      );
      // The doomed broker leases all 600 (two batches of up to 500) to one stream; 250 are acked.
      const holder = await StreamProbe.open(doomedClient, "batches.sub", 600);
      const held = await holder.waitForDeliveries(600, 20_000);
      const acked = held.slice(0, 250);
      const results = await holder.ackAndWait(acked.map((d) => d.ackId));
      expect(results.every((r) => r.status === AckStatus.ACK_STATUS_ACKED)).toBe(true);
      doomed.child.kill("SIGKILL");
      await doomed.exited;
      // The survivor's sweep finds the dead broker's batches lapsed and hands back what was unacked.
      const next = await StreamProbe.open(survivorClient, "batches.sub", 600);
      const back = await next.waitForDeliveries(350, 30_000);
      expect(back.map((d) => d.event?.id).sort()).toEqual(
        held
          .slice(250)
          .map((d) => d.event?.id)
          .sort(),
      );
      expect(back.every((d) => d.deliveryAttempt === 2)).toBe(true);
      await next.ackAndWait(back.map((d) => d.ackId));
      // Nothing more: no acked event, and no unacked one twice.
      await sleep(4_000);
      expect(next.deliveries).toHaveLength(350);
      next.cancel();
    } finally {
      doomedClient.close();
      survivorClient.close();
      for (const broker of brokers) broker.child.kill("SIGKILL");
    }
  }, 120_000);
});
