// The wire bounds the broker splits its messages by must never be below the real encoded size.
import { DeadLetter as DeadLetterMessage } from "@pgmesh/proto/pgmesh/v1/admin";
import { AckResult, Delivery } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { describe, expect, it } from "vitest";
import type { DeadLetter, StoredEvent } from "../../src/delivery/model.ts";
import { deadLetterToWire, eventToWire } from "../../src/server/convert.ts";
import {
  ackResultWireBound,
  deadLetterWireBound,
  deliveryWireBound,
  splitByBytes,
} from "../../src/server/message-size.ts";

const event = (over: Partial<StoredEvent> = {}): StoredEvent => ({
  seq: "1",
  topic: "orders",
  id: "e-1",
  source: "svc",
  type: "shop.OrderPlaced",
  subject: "",
  time: undefined,
  attributes: {},
  orderingKey: "",
  dataTypeUrl: "",
  data: new Uint8Array(),
  deliverAfter: undefined,
  publishedAt: new Date(),
  ...over,
});

const variants: StoredEvent[] = [
  event(),
  event({ time: new Date(8.64e15), deliverAfter: new Date(-8.64e15), publishedAt: new Date(1.5e12 + 0.999) }),
  event({
    id: "é".repeat(256),
    source: "日本".repeat(128),
    subject: "🎉".repeat(256),
    orderingKey: "k".repeat(256),
  }),
  event({
    attributes: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`a${i}`, "v".repeat(4096)])),
  }),
  event({ dataTypeUrl: "type.googleapis.com/shop.v1.OrderPlaced", data: new Uint8Array(1024 * 1024) }),
  event({ data: new Uint8Array(1) }),
];

describe("wire bounds", () => {
  it("bound a delivery from above, and closely for a large payload", () => {
    for (const e of variants) {
      const ackId = "0b8d6a1e-1111-2222-3333-444455556666:12";
      const encoded = Delivery.encode({
        ackId,
        deliveryAttempt: 4_000_000_000,
        event: eventToWire(e),
      }).finish().length;
      // As an element of a repeated field: a tag and a length prefix more.
      expect(deliveryWireBound(ackId, e)).toBeGreaterThanOrEqual(encoded + 6);
    }
    const big = variants[4] as StoredEvent;
    const encoded = Delivery.encode({ ackId: "a:1", deliveryAttempt: 1, event: eventToWire(big) }).finish()
      .length;
    expect(deliveryWireBound("a:1", big) - encoded).toBeLessThan(1024);
  });

  it("bound an ack result and a dead letter from above", () => {
    const message = "nack.delay must be 0s..86400s, got 86401s";
    const result = AckResult.encode({ ackId: "x".repeat(300), status: 8, message }).finish().length;
    expect(ackResultWireBound("x".repeat(300), message)).toBeGreaterThanOrEqual(result + 6);
    for (const e of variants) {
      const dl: DeadLetter = {
        id: "9223372036854775807",
        subscription: "orders.billing",
        event: e,
        attempts: 1000,
        reason: "rejected",
        lastError: "ü".repeat(1024),
        firstFailedAt: new Date(),
        deadLetteredAt: new Date(),
      };
      const encoded = DeadLetterMessage.encode(deadLetterToWire(dl)).finish().length;
      expect(deadLetterWireBound(dl)).toBeGreaterThanOrEqual(encoded + 6);
    }
  });
});

describe("splitByBytes", () => {
  it("keeps each run within the limit, in order, and sends an oversized item alone", () => {
    const sizes = [3, 3, 3, 10, 1, 1, 4];
    const runs = splitByBytes(sizes, (n) => n, 6);
    expect(runs).toEqual([[3, 3], [3], [10], [1, 1, 4]]);
    expect(splitByBytes([], (n: number) => n, 6)).toEqual([]);
  });
});
