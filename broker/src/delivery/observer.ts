// What the delivery layer reports as it works; metrics/ turns it into Prometheus series. Labels
// are topic and subscription names only, never event ids or consumer-chosen strings.
import type { SettleStatus } from "./consumer.ts";
import type { DeadLetterReason } from "./model.ts";

export interface DeliveryObserver {
  published(topic: string, events: number, seconds: number): void;
  /** Deliveries handed to streams in one go, and how many of them were redeliveries. */
  delivered(subscription: string, deliveries: number, redeliveries: number): void;
  /** Deliveries leased by the publish that stored their events (publish-handoffs.ts). */
  handedOff(subscription: string, deliveries: number): void;
  /**
   * One fetch of deliveries from the subscription's queue, from asking to having the leases
   * (waiting to share a transaction with other fetches included): what slows when the queue's
   * statistics go stale or its backlog outgrows memory.
   */
  fetched(subscription: string, seconds: number): void;
  settled(subscription: string, status: SettleStatus, count: number): void;
  /** Seconds from publish to ack, one per acked event. */
  acked(subscription: string, secondsSincePublish: number[]): void;
  deadLettered(subscription: string, reason: DeadLetterReason, count: number): void;
  consumers(subscription: string, delta: 1 | -1): void;
}
