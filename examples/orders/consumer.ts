// Handles orders with the typed subscriber: `event.data` is an OrderPlaced. Resolving acks the
// event; throwing would retry it by the subscription's policy.
//   PGMESH_ADDRESS=127.0.0.1:50051 node --import tsx examples/orders/consumer.ts orders.fulfilment 3
import { connect } from "@pgmesh/sdk";
import { OrderPlacedEvent } from "./gen/shop/v1/orders_pgmesh.ts";

const client = connect(process.env.PGMESH_ADDRESS ?? "127.0.0.1:50051");
const subscription = process.argv[2] ?? "orders.fulfilment";
const stopAfter = Number(process.argv[3] ?? Number.POSITIVE_INFINITY);
let handled = 0;

const subscriber = client.subscribe(
  subscription,
  OrderPlacedEvent,
  async (event) => {
    const order = event.data;
    const items = order.items.map((i) => `${i.quantity}x ${i.sku}`).join(", ");
    console.log(
      `order ${order.orderId} for ${order.customerId}: ${items}, ${(Number(order.totalCents) / 100).toFixed(2)} (attempt ${event.attempt})`,
    );
    handled++;
    if (handled >= stopAfter) setImmediate(() => void subscriber.close());
  },
  { concurrency: 4, consumerName: "fulfilment" },
);
process.once("SIGINT", () => void subscriber.close());
try {
  await subscriber.done;
} finally {
  client.close();
}
