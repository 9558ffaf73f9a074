// How much a Prometheus scrape costs the broker with many subscriptions: the median and p95 time
// of GET /metrics, and of the timer's refresh of the database-backed gauges, with 100
// subscriptions holding a backlog and some dead letters.
//   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node --import tsx bench/scrape.ts
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { startBroker } from "../broker/src/broker.ts";
import { loadConfig } from "../broker/src/config.ts";
import { createLogger } from "../broker/src/log.ts";

const adminUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const SUBSCRIPTIONS = Number(process.env.BENCH_SUBSCRIPTIONS ?? 100);
const SCRAPES = 50;
const name = `pgmesh_bench_${randomBytes(4).toString("hex")}`;
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
await admin.unsafe(`CREATE DATABASE ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const refreshMs: number[] = [];
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.95)] ?? 0;

try {
  const config = loadConfig([], {
    DATABASE_URL: url.toString(),
    PGMESH_GRPC_ADDRESS: "127.0.0.1:0",
    PGMESH_METRICS_ADDRESS: "127.0.0.1:0",
    PGMESH_CONSOLE_ADDRESS: "127.0.0.1:0",
    PGMESH_METRICS_REFRESH_MS: "1000",
  });
  const broker = await startBroker(config, createLogger("warn"));
  const { PgmeshClient } = await import("@pgmesh/sdk");
  const client = new PgmeshClient(broker.grpcAddress);
  await client.createTopic("bench");
  for (let i = 0; i < SUBSCRIPTIONS; i++) await client.createSubscription(`bench.s${i}`, "bench");
  for (let i = 0; i < 10; i++) {
    await client.publish(
      "bench",
      Array.from({ length: 100 }, (_, j) => ({ id: `${i}-${j}`, source: "bench", type: "t" })),
    );
  }
  // Let the gauges pick up the backlog (100 subscriptions x 1000 events).
  await new Promise((r) => setTimeout(r, 3000));
  const scrapeMs: number[] = [];
  let bytes = 0;
  for (let i = 0; i < SCRAPES; i++) {
    const started = performance.now();
    const body = await (await fetch(`http://${broker.metricsAddress}/metrics`)).text();
    scrapeMs.push(performance.now() - started);
    bytes = body.length;
    const refresh = /^pgmesh_gauges_refresh_seconds (\S+)$/m.exec(body)?.[1];
    if (refresh) refreshMs.push(Number(refresh) * 1000);
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(
    `${SUBSCRIPTIONS} subscriptions, ${SUBSCRIPTIONS * 1000} pending deliveries, ${SCRAPES} scrapes`,
  );
  console.log(
    `GET /metrics: median ${median(scrapeMs).toFixed(2)} ms, p95 ${p95(scrapeMs).toFixed(2)} ms, ${(bytes / 1024).toFixed(0)} KiB`,
  );
  console.log(
    `gauge refresh (once a second, off the scrape path): median ${median(refreshMs).toFixed(1)} ms, p95 ${p95(refreshMs).toFixed(1)} ms`,
  );
  client.close();
  await broker.stop();
} finally {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
