// Publisher-side batching, as Pub/Sub's client does it: events published one by one are sent in
// batches of up to `maxMessages` events or `maxBytes` bytes, or after `maxDelayMs`, whichever
// comes first. Events with an ordering key are sent in publish order: one batch of a key is in
// flight at a time, and when one fails the key pauses (its later publishes fail at once) until
// resumePublishing(key), so that an event is never stored after one that was lost before it.

import { Event } from "@pgmesh/proto/pgmesh/v1/event";
import type { PublishResult } from "@pgmesh/proto/pgmesh/v1/publisher";
import { v7 as uuidv7 } from "uuid";
import { type EventEnvelope, type EventType, typedEvent } from "./event-type.ts";

export interface BatchSettings {
  /** Events per request at most (default 100; the broker takes up to 1000). */
  maxMessages?: number;
  /** Encoded bytes per request at most (default 1 MiB); a larger single event goes alone. */
  maxBytes?: number;
  /** How long an event may wait for others to fill its batch, in ms (default 10). */
  maxDelayMs?: number;
}

/** Sends one batch: the client's publish, with its ids, retries and deadline. */
export type SendBatch = (topic: string, events: Event[]) => Promise<PublishResult[]>;

interface Pending {
  event: Event;
  resolve: (result: PublishResult) => void;
  reject: (error: unknown) => void;
}

/** The events waiting for one topic and ordering key ("" for none). */
interface Queue {
  topic: string;
  orderingKey: string;
  pending: Pending[];
  bytes: number;
  timer: NodeJS.Timeout | undefined;
  /** Ordered keys: the batch in flight, which the next one waits for. */
  inFlight: Promise<void>;
  /** Ordered keys: why the key is paused, until resumePublishing. */
  pausedBy: unknown;
}

export class PublishPausedError extends Error {
  constructor(
    readonly orderingKey: string,
    override readonly cause: unknown,
  ) {
    super(
      `publishing with ordering key ${JSON.stringify(orderingKey)} is paused after a failed publish; ` +
        "call resumePublishing(key) to go on",
    );
    this.name = "PublishPausedError";
  }
}

export class BatchPublisher {
  private readonly queues = new Map<string, Queue>();
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  private readonly maxDelayMs: number;
  private readonly sent = new Set<Promise<void>>();

  constructor(
    private readonly send: SendBatch,
    private readonly defaults: { source: string },
    settings: BatchSettings = {},
  ) {
    this.maxMessages = Math.min(1000, Math.max(1, settings.maxMessages ?? 100));
    this.maxBytes = settings.maxBytes ?? 1024 * 1024;
    this.maxDelayMs = settings.maxDelayMs ?? 10;
  }

  /** Queues a wire event for its topic; resolves with its result once its batch is stored. */
  publish(topic: string, partial: Partial<Event>): Promise<PublishResult> {
    // The id is fixed now, so that the batch's retries keep it (see PgmeshClient.publish).
    const event = Event.fromPartial({ source: this.defaults.source, ...partial, id: partial.id || uuidv7() });
    const queue = this.queue(topic, event.orderingKey);
    if (queue.pausedBy !== undefined) {
      return Promise.reject(new PublishPausedError(queue.orderingKey, queue.pausedBy));
    }
    const size = Event.encode(event).finish().length;
    if (queue.pending.length > 0 && queue.bytes + size > this.maxBytes) this.flushQueue(queue);
    return new Promise((resolve, reject) => {
      queue.pending.push({ event, resolve, reject });
      queue.bytes += size;
      if (queue.pending.length >= this.maxMessages || queue.bytes >= this.maxBytes) this.flushQueue(queue);
      else queue.timer ??= setTimeout(() => this.flushQueue(queue), this.maxDelayMs);
    });
  }

  /** Queues a typed message on its event type's topic; see publish. */
  publishEvent<T>(type: EventType<T>, message: T, envelope: EventEnvelope = {}): Promise<PublishResult> {
    return this.publish(type.topic, typedEvent(type, { ...envelope, message }));
  }

  /** Sends everything queued now and waits until every batch sent so far is settled. */
  async flush(): Promise<void> {
    for (const queue of this.queues.values()) this.flushQueue(queue);
    while (this.sent.size > 0) await Promise.allSettled([...this.sent]);
  }

  /** Lets publishes with this ordering key go on after a failure paused them. */
  resumePublishing(orderingKey: string): void {
    for (const queue of this.queues.values()) {
      if (queue.orderingKey === orderingKey) queue.pausedBy = undefined;
    }
  }

  private queue(topic: string, orderingKey: string): Queue {
    const key = `${topic}\u0000${orderingKey}`;
    let queue = this.queues.get(key);
    if (!queue) {
      queue = {
        topic,
        orderingKey,
        pending: [],
        bytes: 0,
        timer: undefined,
        inFlight: Promise.resolve(),
        pausedBy: undefined,
      };
      this.queues.set(key, queue);
    }
    return queue;
  }

  private flushQueue(queue: Queue): void {
    clearTimeout(queue.timer);
    queue.timer = undefined;
    const batch = queue.pending.splice(0);
    queue.bytes = 0;
    if (batch.length === 0) return;
    const events = batch.map((p) => p.event);
    const run = async () => {
      if (queue.pausedBy !== undefined) throw new PublishPausedError(queue.orderingKey, queue.pausedBy);
      return this.send(queue.topic, events);
    };
    // Unordered batches go at once; an ordering key's batches one after the other.
    const sending = queue.orderingKey ? queue.inFlight.then(run) : run();
    const settled = sending.then(
      (results) => {
        for (const [i, p] of batch.entries()) p.resolve(results[i] as PublishResult);
      },
      (error: unknown) => {
        if (queue.orderingKey && queue.pausedBy === undefined) queue.pausedBy = error;
        for (const p of batch) p.reject(error);
      },
    );
    if (queue.orderingKey) queue.inFlight = settled;
    this.sent.add(settled);
    void settled.finally(() => this.sent.delete(settled));
  }
}
