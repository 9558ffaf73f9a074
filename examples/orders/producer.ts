// Publishes orders with the typed event generated from proto/shop/v1/orders.proto: the compiler
// only lets an OrderPlaced go to OrderPlacedEvent's topic.
//   PGMESH_ADDRESS=127.0.0.1:50051 node --import tsx examples/orders/producer.ts 3
import { connect } from "@pgmesh/sdk";
import { OrderPlacedEvent } from "./gen/shop/v1/orders_pgmesh.ts";

const client = connect(process.env.PGMESH_ADDRESS ?? "127.0.0.1:50051", { source: "orders-service" });
const count = Number(process.argv[2] ?? 3);

try {
  for (let i = 1; i <= count; i++) {
    const orderId = `o-${i}`;
    const result = await client.publishEvent(
      OrderPlacedEvent,
      {
        orderId,
        customerId: `c-${i % 2}`,
        totalCents: 1000 * i,
        items: [{ sku: `sku-${i}`, quantity: i }],
        placedAt: new Date(),
      },
      // The order id doubles as the event id: publishing the same order twice is a duplicate.
      { id: orderId, subject: `order/${orderId}`, orderingKey: `c-${i % 2}` },
    );
    console.log(`${result.duplicate ? "already published" : "published"} ${orderId}`);
  }
} finally {
  client.close();
}
