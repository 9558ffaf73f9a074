// Publishing and reading events. A publish is one transaction: each new event is stored once, one
// pg-boss job per (new event, subscription whose filter accepts it) is queued, and one NOTIFY
// wakes the other brokers. Concurrent publishes share transactions (group-commit.ts).
import { v7 as uuidv7 } from "uuid";
import { notFound } from "../delivery/errors.ts";
import type { EventEnvelope, PublishOutcome, StoredEvent, Subscription } from "../delivery/model.ts";
import type { EventStore } from "../delivery/ports.ts";
import { type Sql, type TransactionSql, transaction } from "./database.ts";
import { GroupCommit, type GroupResult } from "./group-commit.ts";
import * as events from "./queries/events.ts";
import { eventKey } from "./queries/events.ts";
import { lockTopicForPublish } from "./queries/subscriptions.ts";
import type { JobQueue } from "./queue.ts";
import { WAKEUP_CHANNEL, wakeupPayload } from "./wakeups.ts";

type Accepts = (subscription: Subscription, event: EventEnvelope) => boolean;
type Published = { outcomes: PublishOutcome[]; subscriptions: string[] };
interface PublishRequest {
  topic: string;
  batch: EventEnvelope[];
  accepts: Accepts;
}

/** Publishes committing at once; the next group fills while they flush. */
const PUBLISH_GROUPS_IN_FLIGHT = 2;
/** Events in one publish transaction at most (a single larger request still goes alone). */
const PUBLISH_GROUP_MAX_EVENTS = 5_000;

export class PostgresEventStore implements EventStore {
  private readonly commits: GroupCommit<PublishRequest, Published>;

  constructor(
    private readonly sql: Sql,
    private readonly queue: JobQueue,
    private readonly brokerId: string,
  ) {
    this.commits = new GroupCommit(
      (requests) => transaction(this.sql, (tx) => this.publishGroupIn(tx, requests)),
      {
        maxInFlight: PUBLISH_GROUPS_IN_FLIGHT,
        maxWeight: PUBLISH_GROUP_MAX_EVENTS,
      },
    );
  }

  /** Publishes in a transaction shared with the publishes that arrive while others commit. */
  publish(topic: string, batch: EventEnvelope[], accepts: Accepts): Promise<Published> {
    return this.commits.submit({ topic, batch, accepts }, batch.length);
  }

  /** The publish, inside the caller's transaction (the outbox relay's). */
  async publishIn(
    tx: TransactionSql,
    topic: string,
    batch: EventEnvelope[],
    accepts: Accepts,
  ): Promise<Published> {
    const subs = await lockTopicForPublish(tx, topic);
    if (!subs) throw notFound(`topic ${topic} does not exist`);
    const { enqueued, ...published } = await this.insertBatch(tx, topic, subs, batch, accepts);
    await Promise.all([enqueued, this.notify(tx, published.subscriptions)]);
    return published;
  }

  /**
   * Several publish requests in one transaction: per topic, one lock, one set of inserts for all
   * its requests' events (in arrival order, so duplicates across requests resolve to the first),
   * and one NOTIFY for the lot. A request on a missing topic fails alone.
   */
  private async publishGroupIn(
    tx: TransactionSql,
    requests: PublishRequest[],
  ): Promise<GroupResult<Published>[]> {
    const byTopic = new Map<string, number[]>();
    requests.forEach((request, index) => {
      byTopic.set(request.topic, [...(byTopic.get(request.topic) ?? []), index]);
    });
    const results: GroupResult<Published>[] = [];
    const woken = new Set<string>();
    const enqueues: Promise<void>[] = [];
    for (const [topic, indices] of byTopic) {
      const subs = await lockTopicForPublish(tx, topic);
      if (!subs) {
        for (const index of indices)
          results[index] = { ok: false, error: notFound(`topic ${topic} does not exist`) };
        continue;
      }
      const batches = indices.map((index) => (requests[index] as PublishRequest).batch);
      const accepts = (requests[indices[0] as number] as PublishRequest).accepts;
      const { outcomes, subscriptions, enqueued } = await this.insertBatch(
        tx,
        topic,
        subs,
        batches.flat(),
        accepts,
      );
      enqueues.push(enqueued);
      for (const name of subscriptions) woken.add(name);
      let offset = 0;
      indices.forEach((index, i) => {
        const size = (batches[i] as EventEnvelope[]).length;
        results[index] = {
          ok: true,
          value: { outcomes: outcomes.slice(offset, offset + size), subscriptions },
        };
        offset += size;
      });
    }
    await Promise.all([...enqueues, this.notify(tx, [...woken])]);
    return results;
  }

  private async insertBatch(
    tx: TransactionSql,
    topic: string,
    subs: Subscription[],
    batch: EventEnvelope[],
    accepts: Accepts,
  ): Promise<Published & { enqueued: Promise<void> }> {
    // Repeats inside one batch are duplicates of their first occurrence.
    const firstOccurrence = new Map<string, EventEnvelope>();
    for (const event of batch) {
      const key = eventKey(event.source, event.id);
      if (!firstOccurrence.has(key)) firstOccurrence.set(key, event);
    }
    const inserted = await events.insertFreshEvents(tx, topic, [...firstOccurrence.values()]);
    const stored = new Set(inserted.map((row) => row.event));
    const woken: string[] = [];
    const inserts: Promise<void>[] = [];
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
      if (deliveries.length === 0) continue;
      // Issued together and awaited by the caller with its NOTIFY: the statements pipeline on
      // the transaction's connection (one round trip for a fan-out, not one per subscription).
      inserts.push(this.queue.enqueue(tx, sub.queue, deliveries));
      woken.push(sub.name);
    }
    const enqueued = Promise.all(inserts).then(() => {});
    // Awaited by the caller; until then a failure must not count as unhandled.
    enqueued.catch(() => {});
    const outcomes = batch.map((event) => {
      const key = eventKey(event.source, event.id);
      const isFirst = firstOccurrence.get(key) === event;
      return { id: event.id, duplicate: !(isFirst && stored.has(event)) };
    });
    return { outcomes, subscriptions: woken, enqueued };
  }

  /** One NOTIFY per transaction, never one per event: NOTIFY serialises committing transactions. */
  private async notify(tx: TransactionSql, woken: string[]): Promise<void> {
    if (woken.length === 0) return;
    await tx`SELECT pg_notify(${WAKEUP_CHANNEL}, ${wakeupPayload(this.brokerId, woken)})`;
  }

  async loadEvents(seqs: string[]): Promise<Map<string, StoredEvent>> {
    const rows = await events.selectEventsBySeq(this.sql, seqs);
    return new Map(rows.map((row) => [row.seq, row]));
  }
}
