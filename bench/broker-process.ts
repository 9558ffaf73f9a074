// The pgmesh broker under test, in a process of its own as it runs when deployed, so that it has its
// own event loop and its memory can be read apart from the bench's. Started by systems/pgmesh.ts
// through the broker's public entry points; the database URL comes in BENCH_BROKER_DATABASE_URL,
// and any PGMESH_* settings in the environment apply. Reports its gRPC and metrics addresses over IPC, and stops
// gracefully on "stop" (or when the bench goes away).
import { startBroker } from "../broker/src/broker.ts";
import { loadConfig } from "../broker/src/config.ts";
import { createLogger } from "../broker/src/log.ts";
import type { BrokerAddresses } from "./systems/broker-child.ts";

const config = loadConfig([], {
  ...process.env,
  DATABASE_URL: process.env.BENCH_BROKER_DATABASE_URL,
  PGMESH_GRPC_ADDRESS: "127.0.0.1:0",
  PGMESH_METRICS_ADDRESS: "127.0.0.1:0",
  PGMESH_CONSOLE_ADDRESS: "127.0.0.1:0",
});
const broker = await startBroker(
  config,
  createLogger(process.env.PGMESH_LOG_LEVEL === "debug" ? "debug" : "warn"),
);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await broker.stop();
  process.exit(0);
};
process.on("message", (message) => {
  if (message === "stop") void stop();
});
// The bench went away: stop, and do not outlive it for long if the database went first.
process.on("disconnect", () => {
  setTimeout(() => process.exit(1), 15_000).unref();
  void stop();
});
const addresses: BrokerAddresses = { grpcAddress: broker.grpcAddress, metricsAddress: broker.metricsAddress };
process.send?.(addresses);
