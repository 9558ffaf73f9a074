// A consumer that fails: every order is refused once (a transient error: retried after the
// backoff), and orders over 100.00 always (a bug: after max attempts they land in the dead-letter
// table). Run it, look at the dead letters, fix the bug, redrive:
//   PGMESH_ADDRESS=... node --import tsx examples/flaky-consumer/consumer.ts orders.flaky 5
//   npx pgmesh dead-letters list orders.flaky
//   npx pgmesh dead-letters redrive orders.flaky --all
import { connect } from "@pgmesh/sdk";
import { OrderPlacedEvent } from "../orders/gen/shop/v1/orders_pgmesh.ts";

const client = connect(process.env.PGMESH_ADDRESS ?? "127.0.0.1:50051");
const subscription = process.argv[2] ?? "orders.flaky";
// Settled outcomes to see before exiting: acks plus give-ups on the last attempt.
const stopAfter = Number(process.argv[3] ?? Number.POSITIVE_INFINITY);
const maxAttempts = (await client.getSubscription(subscription)).maxDeliveryAttempts ?? 5;
const bugFixed = process.env.BUG_FIXED === "1";
let settled = 0;

const subscriber = client.subscribe(subscription, OrderPlacedEvent, async (event) => {
  const order = event.data;
  const done = () => {
    settled++;
    if (settled >= stopAfter) setImmediate(() => void subscriber.close());
  };
  if (Number(order.totalCents) > 10_000 && !bugFixed) {
    console.log(`order ${order.orderId}: attempt ${event.attempt} failed (amount too large)`);
    if (event.attempt >= maxAttempts) done();
    throw new Error(`cannot handle an amount of ${order.totalCents} cents`);
  }
  if (event.attempt === 1) {
    console.log(`order ${order.orderId}: attempt 1 failed (warehouse busy)`);
    throw new Error("warehouse busy");
  }
  console.log(`order ${order.orderId}: done on attempt ${event.attempt}`);
  done();
});
try {
  await subscriber.done;
} finally {
  client.close();
}
