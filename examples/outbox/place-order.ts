// Transactional publish: the order row and its OrderPlaced event commit together or not at all,
// because the event is written inside the application's own transaction (DATABASE_URL must be the
// broker's database). `--fail` rolls the transaction back after writing both.
//   DATABASE_URL=postgres://... node --import tsx examples/outbox/place-order.ts o-1 [--fail]
import { outboxPublishEvents } from "@pgmesh/sdk";
import postgres from "postgres";
import { OrderPlacedEvent } from "../orders/gen/shop/v1/orders_pgmesh.ts";

const sql = postgres(process.env.DATABASE_URL ?? "", { max: 1, onnotice: () => {} });
const orderId = process.argv[2] ?? "o-1";
const fail = process.argv.includes("--fail");

try {
  await sql`CREATE TABLE IF NOT EXISTS shop_orders (id text PRIMARY KEY, total_cents bigint NOT NULL)`;
  await sql.begin(async (tx) => {
    await tx`INSERT INTO shop_orders (id, total_cents) VALUES (${orderId}, 4200)`;
    const [eventId] = await outboxPublishEvents(
      tx,
      OrderPlacedEvent,
      [
        {
          message: { orderId, customerId: "c-1", totalCents: 4200, items: [], placedAt: new Date() },
          id: orderId,
        },
      ],
      { source: "shop" },
    );
    if (fail) throw new Error("payment declined");
    console.log(`order ${orderId} stored with event ${eventId}`);
  });
} catch (error) {
  console.log(`order ${orderId} rolled back: ${(error as Error).message}`);
} finally {
  await sql.end();
}
