// What the delivery layer needs from storage. store/ implements these against Postgres and
// pg-boss; delivery logic depends only on the interfaces.
import type {
  DeadLetter,
  DeadLetterSelection,
  DeliveryPolicy,
  EventEnvelope,
  FailureOutcome,
  HandoffAsk,
  Lease,
  LeaseHolding,
  Page,
  ParkedKey,
  Published,
  ScheduledDelivery,
  SeekResult,
  StartPosition,
  StoredEvent,
  Subscription,
  SubscriptionStats,
  Topic,
  TopicSchema,
} from "./model.ts";

export interface CatalogStore {
  createTopic(name: string, retentionSeconds: number): Promise<Topic>;
  /** Undefined when the topic does not exist. */
  updateTopic(name: string, retentionSeconds: number): Promise<Topic | undefined>;
  getTopic(name: string): Promise<Topic | undefined>;
  listTopics(pageSize: number, after: string): Promise<Page<Topic>>;
  /** Binds the topic to a schema, or unbinds it (undefined); false if the topic does not exist. */
  setTopicSchema(topic: string, schema: Omit<TopicSchema, "updatedAt"> | undefined): Promise<boolean>;
  getTopicSchema(topic: string): Promise<TopicSchema | undefined>;
  /** Fails with failed_precondition while subscriptions exist. */
  deleteTopic(name: string): Promise<boolean>;
  createSubscription(
    sub: {
      name: string;
      topic: string;
      ordering: boolean;
      filter: string;
      start: StartPosition;
    } & DeliveryPolicy,
  ): Promise<Subscription>;
  /**
   * Moves the subscription's cursor (events before the position count as acked, those after as
   * pending) and drops its pending and leased deliveries. Fails with failed_precondition before
   * the oldest retained event.
   */
  seekSubscription(subscription: Subscription, to: StartPosition): Promise<SeekResult>;
  getSubscription(name: string): Promise<Subscription | undefined>;
  /** Replaces the policy; applies to deliveries already queued too. */
  updateSubscription(name: string, policy: DeliveryPolicy): Promise<Subscription | undefined>;
  listSubscriptions(topic: string, pageSize: number, after: string): Promise<Page<Subscription>>;
  deleteSubscription(name: string): Promise<boolean>;
  stats(subscription: Subscription): Promise<SubscriptionStats>;
  listParkedKeys(subscription: Subscription): Promise<ParkedKey[]>;
  releaseParkedKeys(subscription: Subscription, keys: string[]): Promise<number>;
  /** Up to `limit` of the topic's stored events, from a position up or before one down. */
  listTopicEvents(topic: string, from: TopicEventsFrom, limit: number): Promise<StoredEvent[]>;
  /** The position of the first event published at or after `time`; undefined when none is. */
  firstEventAtOrAfter(topic: string, time: Date): Promise<string | undefined>;
}

/** Where a page of a topic's events starts: ascending from a seq, or descending before one. */
export type TopicEventsFrom =
  | { direction: "up"; seq: string }
  | { direction: "down"; before: string | undefined };

export interface DeadLetterStore {
  list(selection: DeadLetterSelection, pageSize: number, after: string): Promise<Page<DeadLetter>>;
  /** Queues the selected dead letters again (attempts reset), each at most once ever. */
  redrive(subscription: Subscription, selection: DeadLetterSelection): Promise<number>;
  purge(subscription: Subscription, selection: DeadLetterSelection): Promise<number>;
}

export interface EventStore {
  /**
   * Stores the events in one transaction (a repeat of a stored idempotency key is a duplicate and
   * stores nothing). Subscriptions lease them from their cursors, except that each of `handoffs`
   * whose cursor is at the topic's head takes them in the same transaction (up to its room).
   */
  publish(topic: string, events: EventEnvelope[], handoffs?: HandoffAsk[]): Promise<Published>;
  /** The events of a topic by seq; one that is gone is missing from the map. */
  loadEvents(topic: string, seqs: string[]): Promise<Map<string, StoredEvent>>;
}

export interface OutboxStore {
  /**
   * Publishes up to `limit` outbox events in outbox order and removes them, in one transaction;
   * events that `prepare` refuses are set aside. Does nothing while another broker relays.
   */
  relay(
    limit: number,
    /** The event to publish, or a MeshError saying why the row is set aside. */
    prepare: (bytes: Uint8Array, topic: string) => Promise<EventEnvelope>,
  ): Promise<{ taken: number; failed: number; topics: string[] }>;
  /** Calls back when an application committed outbox events (and after a reconnect). */
  listen(onWake: () => void): Promise<void>;
}

export interface DeliveryQueue {
  /** Leases up to `limit` deliveries of a subscription's queue (retries, delayed, ordered); never blocks. */
  lease(queue: string, limit: number): Promise<Lease[]>;
  /**
   * The subscription's cursor and up to `limit` events of its topic after it; undefined when the
   * subscription is gone.
   */
  readCursor(queue: string, limit: number): Promise<{ position: string; events: StoredEvent[] } | undefined>;
  /**
   * Moves the cursor from `from` to `to` and writes the deliveries, in one transaction: those
   * leased now as one batch (`holding` "batch") or a job each ("jobs"). Returns the leases, by
   * event seq; undefined (nothing written) when the cursor was no longer at `from` (another broker
   * leased, or a seek moved it).
   */
  advanceCursor(
    queue: string,
    from: string,
    to: string,
    deliveries: ScheduledDelivery[],
    holding: LeaseHolding,
  ): Promise<Map<string, Lease> | undefined>;
  /**
   * Of these queues, the ones holding a delivery a lease would take now, or whose cursor is behind
   * its topic: one statement for all.
   */
  queuesWithWork(queues: string[]): Promise<Set<string>>;
  /**
   * Settles deliveries as done; returns the job ids it settled (others were stale). With an acked
   * retention of 0 the delivery is gone at once, otherwise it is kept that long.
   */
  complete(subscription: Subscription, leases: Lease[]): Promise<Set<string>>;
  /**
   * Settles failed deliveries, each as its outcome says (retry after a delay, or dead letter), in
   * one transaction. Returns the job ids it settled (others were stale).
   */
  fail(subscription: Subscription, outcomes: FailureOutcome[]): Promise<Set<string>>;
  /**
   * Makes each lease run out `seconds` from now. Returns the leases extended, by the job id they
   * had: a batch's slot leaves its batch for a job of its own, so its lease is a new one.
   */
  extend(queue: string, leases: Lease[], seconds: number): Promise<Map<string, Lease>>;
  /** In-flight deliveries, on any broker, whose lease ran out. */
  findLapsed(limit: number): Promise<{ subscription: string; lease: Lease }[]>;
  /**
   * Runs `work` holding the mesh-wide lock of the lapsed-lease sweep; undefined (and `work` not
   * run) while another broker holds it. A broker that dies lets go of it with its connection.
   */
  exclusively<T>(work: () => Promise<T>): Promise<T | undefined>;
}

export interface WakeupBus {
  /**
   * Calls back when another broker's publish committed new events on these topics, or a redrive
   * queued deliveries; ["*"] when any may have been missed (a reconnect).
   */
  listen(onWake: (topics: string[], kind: "events" | "jobs") => void): Promise<void>;
  /** Calls back when any broker (this one too) updated or deleted a subscription. */
  listenForSubscriptionChanges(
    onChange: (change: { name: string; queue: string; kind: "updated" | "deleted" }) => void,
  ): Promise<void>;
  /** Calls back with the topic when its schema changed; with none when changes may have been missed. */
  listenForTopicSchemaChanges(onChange: (topic?: string) => void): Promise<void>;
}
