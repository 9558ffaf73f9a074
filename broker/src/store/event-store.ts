// Publishing and reading events. A publish is one transaction: the events are stored once, one
// pg-boss job per (new event, subscription) is queued, and one NOTIFY wakes the other brokers.
import { notFound } from "../delivery/errors.ts";
import type { EventEnvelope, PublishOutcome, StoredEvent } from "../delivery/model.ts";
import type { EventStore } from "../delivery/ports.ts";
import type { Sql } from "./database.ts";
import * as events from "./queries/events.ts";
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

  async publish(
    topic: string,
    batch: EventEnvelope[],
  ): Promise<{ outcomes: PublishOutcome[]; subscriptions: string[] }> {
    // Repeats inside one batch are duplicates of their first occurrence.
    const firstOccurrence = new Map<string, EventEnvelope>();
    for (const event of batch) {
      const key = idempotencyKey(event.source, event.id);
      if (!firstOccurrence.has(key)) firstOccurrence.set(key, event);
    }
    return this.sql.begin(async (tx) => {
      if (!(await topics.lockTopicShared(tx, topic))) throw notFound(`topic ${topic} does not exist`);
      const subs = await subscriptions.selectSubscriptionsForPublish(tx, topic);
      const inserted = await events.insertEvents(tx, topic, [...firstOccurrence.values()]);
      const fresh = new Set(inserted.map((row) => idempotencyKey(row.source, row.id)));
      const deliveries = inserted.map((row) => ({ eventSeq: row.seq, startAfter: row.deliverAfter }));
      for (const sub of subs) await this.queue.enqueue(tx, sub.queue, deliveries);
      const woken = deliveries.length > 0 ? subs.map((s) => s.name) : [];
      if (woken.length > 0) {
        // One NOTIFY per transaction, never one per event: NOTIFY serialises committing transactions.
        await tx`SELECT pg_notify(${WAKEUP_CHANNEL}, ${wakeupPayload(this.brokerId, woken)})`;
      }
      const outcomes = batch.map((event) => {
        const key = idempotencyKey(event.source, event.id);
        const isFirst = firstOccurrence.get(key) === event;
        return { id: event.id, duplicate: !(isFirst && fresh.has(key)) };
      });
      return { outcomes, subscriptions: woken };
    });
  }

  async loadEvents(seqs: string[]): Promise<Map<string, StoredEvent>> {
    const rows = await events.selectEventsBySeq(this.sql, seqs);
    return new Map(rows.map((row) => [row.seq, row]));
  }
}

const idempotencyKey = (source: string, id: string) => `${source}\u0000${id}`;
