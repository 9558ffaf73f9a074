// The orders example as a user runs it: the producer and the consumer are separate processes on
// the generated typed events, against a real broker.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, expect, it } from "vitest";
import { useTestBroker } from "../../broker/test/support/broker.ts";
import { FROM_SOURCE } from "../../broker/test/support/from-source.ts";

const run = promisify(execFile);
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const t = useTestBroker();

beforeAll(async () => {
  await t.mesh.client.createTopic("orders");
  await t.mesh.client.createSubscription("orders.fulfilment", "orders");
});

const node = (script: string, ...args: string[]) =>
  run(process.execPath, [...FROM_SOURCE, here(script), ...args], {
    env: { ...process.env, PGMESH_ADDRESS: t.mesh.address },
  });

it("the producer publishes typed orders and the consumer handles each once", async () => {
  const produced = await node("producer.ts", "3");
  expect(produced.stdout).toBe("published o-1\npublished o-2\npublished o-3\n");
  // Running it again publishes nothing new: the order id is the idempotency key.
  expect((await node("producer.ts", "1")).stdout).toBe("already published o-1\n");
  const consumed = await node("consumer.ts", "orders.fulfilment", "3");
  const lines = consumed.stdout.trim().split("\n").sort();
  expect(lines).toEqual([
    "order o-1 for c-1: 1x sku-1, 10.00 (attempt 1)",
    "order o-2 for c-0: 2x sku-2, 20.00 (attempt 1)",
    "order o-3 for c-1: 3x sku-3, 30.00 (attempt 1)",
  ]);
  expect(await t.mesh.client.subscriptionStats("orders.fulfilment")).toMatchObject({
    backlog: 0,
    inFlight: 0,
  });
});
