// The flaky consumer example: retries with backoff, a poison order in the dead-letter table, then
// the bug fixed and the dead letter redriven, all through real processes and a real broker.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, expect, it } from "vitest";
import { useTestBroker } from "../../broker/test/support/broker.ts";
import { FROM_SOURCE } from "../../broker/test/support/from-source.ts";
import { OrderPlacedEvent } from "../orders/gen/shop/v1/orders_pgmesh.ts";

const run = promisify(execFile);
const consumer = fileURLToPath(new URL("consumer.ts", import.meta.url));
const pgmesh = fileURLToPath(new URL("../../broker/bin/pgmesh.js", import.meta.url));
const t = useTestBroker();

beforeAll(async () => {
  await t.mesh.client.createTopic("orders");
  await t.mesh.client.createSubscription("orders.flaky", "orders", {
    maxDeliveryAttempts: 3,
    retryPolicy: { initialBackoffSeconds: 1, maxBackoffSeconds: 1, jitter: 0 },
  });
});

const env = (extra: Record<string, string> = {}) => ({
  ...process.env,
  PGMESH_ADDRESS: t.mesh.address,
  ...extra,
});

it("retries a transient failure, dead-letters a poison order, and delivers it after the fix and a redrive", async () => {
  await t.mesh.client.publishEvents(OrderPlacedEvent, [
    {
      message: { orderId: "small", customerId: "c", totalCents: 500, items: [], placedAt: undefined },
      id: "small",
    },
    {
      message: { orderId: "huge", customerId: "c", totalCents: 50_000, items: [], placedAt: undefined },
      id: "huge",
    },
  ]);
  const first = await run(process.execPath, [...FROM_SOURCE, consumer, "orders.flaky", "2"], {
    env: env(),
  });
  const lines = first.stdout.trim().split("\n");
  expect(lines).toEqual(
    expect.arrayContaining([
      "order small: attempt 1 failed (warehouse busy)",
      "order small: done on attempt 2",
      "order huge: attempt 1 failed (amount too large)",
      "order huge: attempt 2 failed (amount too large)",
      "order huge: attempt 3 failed (amount too large)",
    ]),
  );
  const listed = await run(
    process.execPath,
    [...FROM_SOURCE, pgmesh, "dead-letters", "list", "orders.flaky"],
    {
      env: env(),
    },
  );
  const dead = JSON.parse(listed.stdout);
  expect(dead).toMatchObject({
    reason: "max_attempts",
    attempts: 3,
    lastError: "cannot handle an amount of 50000 cents",
  });
  expect(dead.event).toMatchObject({ id: "huge", type: "shop.v1.OrderPlaced" });

  const redriven = await run(
    process.execPath,
    [...FROM_SOURCE, pgmesh, "dead-letters", "redrive", "orders.flaky", "--all"],
    {
      env: env(),
    },
  );
  expect(redriven.stdout).toBe("redrove 1 dead letter(s)\n");
  const fixed = await run(process.execPath, [...FROM_SOURCE, consumer, "orders.flaky", "1"], {
    env: env({ BUG_FIXED: "1" }),
  });
  expect(fixed.stdout).toBe("order huge: attempt 1 failed (warehouse busy)\norder huge: done on attempt 2\n");
  expect(await t.mesh.client.subscriptionStats("orders.flaky")).toMatchObject({
    backlog: 0,
    inFlight: 0,
    deadLetters: 0,
  });
});
