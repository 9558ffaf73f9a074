// The outbox example: an order and its event commit together; a rolled-back order publishes
// nothing. Real processes, a real broker on the same database.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, expect, it } from "vitest";
import { useTestBroker } from "../../broker/test/support/broker.ts";
import { FROM_SOURCE } from "../../broker/test/support/from-source.ts";
import { StreamProbe, sleep } from "../../broker/test/support/stream-probe.ts";

const run = promisify(execFile);
const script = fileURLToPath(new URL("place-order.ts", import.meta.url));
const t = useTestBroker();

beforeAll(async () => {
  await t.mesh.client.createTopic("orders");
  await t.mesh.client.createSubscription("orders.billing", "orders");
});

const placeOrder = (...args: string[]) =>
  run(process.execPath, [...FROM_SOURCE, script, ...args], {
    env: { ...process.env, DATABASE_URL: t.db.url },
  });

it("delivers the committed order's event and never the rolled-back one's", async () => {
  expect((await placeOrder("o-1")).stdout).toBe("order o-1 stored with event o-1\n");
  expect((await placeOrder("o-2", "--fail")).stdout).toBe("order o-2 rolled back: payment declined\n");
  const probe = await StreamProbe.open(t.mesh.client, "orders.billing");
  const [delivery] = await probe.waitForDeliveries(1);
  expect(delivery?.event).toMatchObject({ id: "o-1", source: "shop", type: "shop.v1.OrderPlaced" });
  await sleep(1000);
  expect(probe.deliveries).toHaveLength(1);
  await probe.ackAndWait([delivery?.ackId ?? ""]);
  await probe.close();
});
