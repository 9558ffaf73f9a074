// What the delivery layer needs from storage. store/ implements these against Postgres and
// pg-boss; delivery logic depends only on the interfaces.
import type {
  EventEnvelope,
  Lease,
  Page,
  PublishOutcome,
  StoredEvent,
  Subscription,
  Topic,
} from "./model.ts";

export interface CatalogStore {
  createTopic(name: string): Promise<Topic>;
  getTopic(name: string): Promise<Topic | undefined>;
  listTopics(pageSize: number, after: string): Promise<Page<Topic>>;
  /** Fails with failed_precondition while subscriptions exist. */
  deleteTopic(name: string): Promise<boolean>;
  createSubscription(sub: Omit<Subscription, "createdAt" | "queue">): Promise<Subscription>;
  getSubscription(name: string): Promise<Subscription | undefined>;
  listSubscriptions(topic: string, pageSize: number, after: string): Promise<Page<Subscription>>;
  deleteSubscription(name: string): Promise<boolean>;
}

export interface EventStore {
  /**
   * Stores the events and queues one delivery per (event, subscription of the topic) in one
   * transaction. Returns the subscriptions that got new deliveries, for wake-ups.
   */
  publish(
    topic: string,
    events: EventEnvelope[],
  ): Promise<{ outcomes: PublishOutcome[]; subscriptions: string[] }>;
  loadEvents(seqs: string[]): Promise<Map<string, StoredEvent>>;
}

export interface DeliveryQueue {
  /** Leases up to `limit` deliveries of a subscription; never blocks. */
  lease(queue: string, limit: number): Promise<Lease[]>;
  /** Settles deliveries as done; returns the job ids it settled (others were stale). */
  complete(queue: string, leases: Lease[]): Promise<Set<string>>;
  /** Puts deliveries back for redelivery; returns the job ids it settled (others were stale). */
  release(queue: string, leases: Lease[]): Promise<Set<string>>;
}

export interface WakeupBus {
  /** Calls back when another broker's publish committed new deliveries for these subscriptions. */
  listen(onWake: (subscriptions: string[]) => void): Promise<void>;
  /** Calls back when any broker (this one too) deleted a subscription, naming that incarnation. */
  listenForDeletions(onDeleted: (subscription: { name: string; queue: string }) => void): Promise<void>;
}
