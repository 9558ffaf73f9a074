// Publishing and reading events. A publish is one transaction: each new event is stored once, one
// pg-boss job per (new event, subscription whose filter accepts it) is queued, and one NOTIFY
// wakes the other brokers.
import { v7 as uuidv7 } from "uuid";
import { notFound } from "../delivery/errors.ts";
import type { EventEnvelope, PublishOutcome, StoredEvent, Subscription } from "../delivery/model.ts";
import type { EventStore } from "../delivery/ports.ts";
import { type Sql, type TransactionSql, transaction } from "./database.ts";
import * as events from "./queries/events.ts";
import { eventKey } from "./queries/events.ts";
import * as subscriptions from "./queries/subscriptions.ts";
import * as topics from "./queries/topics.ts";
import type { JobQueue } from "./queue.ts";
import { WAKEUP_CHANNEL, wakeupPayload } from "./wakeups.ts";

export class PostgresEventStore implements EventStore {
  constructor(
    private readonly sql: Sql,
    private readonly queue: JobQueue,
    private readonly brokerId: string,
  ) {}

  publish(
    topic: string,
    batch: EventEnvelope[],
    accepts: (subscription: Subscription, event: EventEnvelope) => boolean,
  ): Promise<{ outcomes: PublishOutcome[]; subscriptions: string[] }> {
    return transaction(this.sql, (tx) => this.publishIn(tx, topic, batch, accepts));
  }

  /** The publish, inside the caller's transaction (the outbox relay's, or publish's own). */
  async publishIn(
    tx: TransactionSql,
    topic: string,
    batch: EventEnvelope[],
    accepts: (subscription: Subscription, event: EventEnvelope) => boolean,
  ): Promise<{ outcomes: PublishOutcome[]; subscriptions: string[] }> {
    // Repeats inside one batch are duplicates of their first occurrence.
    const firstOccurrence = new Map<string, EventEnvelope>();
    for (const event of batch) {
      const key = eventKey(event.source, event.id);
      if (!firstOccurrence.has(key)) firstOccurrence.set(key, event);
    }
    if (!(await topics.lockTopicShared(tx, topic))) throw notFound(`topic ${topic} does not exist`);
    const subs = await subscriptions.selectSubscriptionsForPublish(tx, topic);
    const candidates = [...firstOccurrence.values()];
    const claimed = await events.claimEventKeys(tx, topic, candidates);
    const fresh = candidates.filter((e) => claimed.has(eventKey(e.source, e.id)));
    // In publish order, which ordered subscriptions keep per key.
    const position = new Map(fresh.map((event, index) => [event, index]));
    const inserted = (await events.insertEvents(tx, topic, fresh)).sort(
      (a, b) => (position.get(a.event) ?? 0) - (position.get(b.event) ?? 0),
    );
    const woken: string[] = [];
    for (const sub of subs) {
      const deliveries = inserted
        .filter((row) => accepts(sub, row.event))
        .map((row) => ({
          // pg-boss orders a key's jobs by (created_on, id), and created_on is one value for the
          // whole transaction: time-ordered ids keep the events of one batch in publish order.
          id: sub.ordering ? uuidv7() : undefined,
          eventSeq: row.seq,
          startAfter: row.event.deliverAfter,
          // Ordered queues need a key on every job; an unkeyed event gets one of its own.
          orderingKey: sub.ordering ? row.event.orderingKey || `~${row.seq}` : undefined,
        }));
      await this.queue.enqueue(tx, sub.queue, deliveries);
      if (deliveries.length > 0) woken.push(sub.name);
    }
    if (woken.length > 0) {
      // One NOTIFY per transaction, never one per event: NOTIFY serialises committing transactions.
      await tx`SELECT pg_notify(${WAKEUP_CHANNEL}, ${wakeupPayload(this.brokerId, woken)})`;
    }
    const outcomes = batch.map((event) => {
      const key = eventKey(event.source, event.id);
      const isFirst = firstOccurrence.get(key) === event;
      return { id: event.id, duplicate: !(isFirst && claimed.has(key)) };
    });
    return { outcomes, subscriptions: woken };
  }

  async loadEvents(seqs: string[]): Promise<Map<string, StoredEvent>> {
    const rows = await events.selectEventsBySeq(this.sql, seqs);
    return new Map(rows.map((row) => [row.seq, row]));
  }

  /** Forgets idempotency keys older than the window: those ids may be published again. */
  forgetKeysOlderThan(seconds: number): Promise<number> {
    return events.deleteEventKeysOlderThan(this.sql, seconds);
  }
}
