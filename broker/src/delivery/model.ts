// The broker's domain records, independent of gRPC and SQL.

export interface Topic {
  name: string;
  createdAt: Date;
  /** Events older than this that nothing needs any more are deleted. */
  retentionSeconds: number;
}

export interface TopicSchema {
  fileDescriptorSet: Uint8Array;
  messageTypes: string[];
  updatedAt: Date;
}

/** When to redeliver after a failure; see retry-policy.ts. */
export interface RetryPolicy {
  initialBackoffSeconds: number;
  maxBackoffSeconds: number;
  multiplier: number;
  jitter: number;
}

/** What a subscription's owner sets: everything about delivery that is not its identity. */
export interface DeliveryPolicy {
  ackDeadlineSeconds: number;
  /** How long acked deliveries stay in the queue (0: deleted promptly). */
  ackedRetentionSeconds: number;
  maxDeliveryAttempts: number;
  deadLettering: boolean;
  retryPolicy: RetryPolicy;
}

export interface Subscription extends DeliveryPolicy {
  name: string;
  topic: string;
  /** Fixed at creation: per-ordering-key publish order, one event of a key in flight at a time. */
  ordering: boolean;
  /** Fixed at creation: the attribute filter (filter.ts); empty matches every event. */
  filter: string;
  createdAt: Date;
  /** Where the subscription's deliveries wait; opaque outside store/. */
  queue: string;
}

/** An event as producers send it and consumers receive it. */
export interface EventEnvelope {
  id: string;
  source: string;
  type: string;
  subject: string;
  time: Date | undefined;
  attributes: Record<string, string>;
  orderingKey: string;
  dataTypeUrl: string;
  data: Uint8Array;
  /** Not delivered before this time. */
  deliverAfter: Date | undefined;
}

export interface StoredEvent extends EventEnvelope {
  /** Internal key; the pg-boss jobs carry it. */
  seq: string;
  topic: string;
  publishedAt: Date;
}

export interface PublishOutcome {
  id: string;
  duplicate: boolean;
}

/**
 * A subscription (by its queue) asking a publish for the topic's new events, up to `room`: its
 * dispatcher here is idle with its cursor at the topic's head (delivery/publish-handoffs.ts).
 */
export interface HandoffAsk {
  queue: string;
  room: number;
}

/** A delivery a publish leased to a subscription that asked, with its event. */
export interface HandedDelivery {
  lease: Lease;
  event: StoredEvent;
}

/** What a publish request stored, and what it handed off. */
export interface Published {
  outcomes: PublishOutcome[];
  stored: number;
  /**
   * The newest event its statement stored on the request's topic (from any request of its group):
   * a dispatcher whose cursor is there has nothing new to read.
   */
  newest: string | undefined;
  /** By queue, the deliveries handed off to the subscriptions this request asked for. */
  handedOff: Map<string, HandedDelivery[]>;
}

/**
 * How a lease from the cursor holds the events it leases now: one pending set for all of them (a
 * row per batch), or a pg-boss job each (subscriptions that keep acked deliveries a while).
 */
export type LeaseHolding = "batch" | "jobs";

/** A delivery a lease from the cursor writes: leased at once, or a job with a schedule of its own. */
export interface ScheduledDelivery {
  seq: string;
  /** Leased now (in flight, first attempt); otherwise waiting in the queue for its time or key. */
  leased: boolean;
  /** When it falls due (a delayed event); now when left out. */
  startAfter?: Date | undefined;
  /** A time-ordered id (ordered subscriptions: a key's jobs go in seq order). */
  id?: string | undefined;
  /** The ordering key (ordered subscriptions). */
  key?: string | undefined;
}

/**
 * Where a first attempt leased from the cursor is held: a slot of a leased batch (one row for the
 * batch's events, store/queries/lease-batches.ts) rather than a pg-boss job of its own.
 */
export interface LeaseSlot {
  batch: string;
  index: number;
  /** The batch's number of slots. */
  size: number;
}

/** One delivery attempt of one event to one subscription, as the queue hands it out. */
export interface Lease {
  /** The delivery's id, unique among leases: its pg-boss job's, or its batch slot's. */
  jobId: string;
  /** pg-boss's retryCount: 0 on the first attempt. It fences settles to this attempt. */
  retryCount: number;
  eventSeq: string;
  /** Set when the lease is a slot of a leased batch (a first attempt from the cursor). */
  slot?: LeaseSlot;
  /** When the event was published, once known (for the publish-to-ack latency). */
  publishedAt?: Date;
}

export type DeadLetterReason = "max_attempts" | "rejected";

export interface DeadLetter {
  id: string;
  subscription: string;
  event: StoredEvent;
  attempts: number;
  reason: DeadLetterReason;
  lastError: string;
  firstFailedAt: Date;
  deadLetteredAt: Date;
}

/** Which dead letters of a subscription an operation is about; unset fields match all. */
export interface DeadLetterSelection {
  subscription: string;
  ids?: string[];
  reason?: DeadLetterReason;
  after?: Date;
  before?: Date;
  eventType?: string;
}

/** Where a subscription starts reading its topic, or where a seek moves it. */
export type StartPosition =
  | { kind: "now" }
  | { kind: "earliest" }
  | { kind: "time"; time: Date }
  /** The event at this seq and those after it. */
  | { kind: "position"; position: string };

export interface SeekResult {
  /** The first position the subscription now delivers from. */
  position: string;
  /** Deliveries pending or leased before the seek, dropped by it. */
  dropped: number;
}

export interface SubscriptionStats {
  /** Events after the cursor (counted up to a cap) plus deliveries waiting in the queue. */
  backlog: number;
  /** Events of the topic the cursor has not passed (counted up to a cap; the filter not applied). */
  cursorLag: number;
  /** Age of the oldest event the cursor has not passed; 0 at the head. */
  cursorLagAgeSeconds: number;
  /** The cursor: the seq of the last event leased, scheduled or skipped. */
  cursorPosition: string;
  inFlight: number;
  oldestUnackedAgeSeconds: number;
  deadLetters: number;
  parkedKeys: number;
}

export interface ParkedKey {
  orderingKey: string;
  /** The dead letter holding the key; empty if it was purged. */
  deadLetterId: string;
  waiting: number;
}

/** How one failed delivery is settled: retried after a delay, or dead-lettered. */
export type FailureOutcome =
  | { lease: Lease; retryAfterSeconds: number; error: string }
  | { lease: Lease; deadLetter: DeadLetterReason; error: string };

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}
