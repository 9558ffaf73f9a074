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
import { topicEventKey } from "./queries/events.ts";
import { lockTopicsForPublish } from "./queries/subscriptions.ts";
import type { JobQueue, NewDelivery } from "./queue.ts";
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
/** Event loads running at once, and the most events one load query reads. */
const LOADS_IN_FLIGHT = 2;
const LOAD_GROUP_MAX_EVENTS = 2_000;
/** Events in one publish transaction at most (a single larger request still goes alone). */
const PUBLISH_GROUP_MAX_EVENTS = 5_000;

export class PostgresEventStore implements EventStore {
  private readonly commits: GroupCommit<PublishRequest, Published>;
  private readonly loads = new GroupCommit<string[], Map<string, StoredEvent>>(
    (requests) => this.loadGroup(requests),
    {
      maxInFlight: LOADS_IN_FLIGHT,
      maxWeight: LOAD_GROUP_MAX_EVENTS,
    },
  );

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
    const [result] = await this.publishGroupIn(tx, [{ topic, batch, accepts }]);
    if (!result?.ok) throw result?.error;
    return result.value;
  }

  /**
   * Several publish requests, on any topics, in one transaction and a fixed number of round
   * trips: one to lock every topic and its subscriptions, one to claim the keys and store the new
   * events, one for the job inserts (one statement per subscription, pipelined) and the NOTIFY.
   * Events are taken in arrival order, so a repeat across requests resolves to the first. A
   * request on a missing topic fails alone.
   */
  private async publishGroupIn(
    tx: TransactionSql,
    requests: PublishRequest[],
  ): Promise<GroupResult<Published>[]> {
    const subsByTopic = await lockTopicsForPublish(tx, [...new Set(requests.map((r) => r.topic))]);
    // Repeats are duplicates of their first occurrence.
    const firstOccurrence = new Map<string, EventEnvelope>();
    for (const { topic, batch } of requests) {
      if (!subsByTopic.has(topic)) continue;
      for (const event of batch) {
        const key = topicEventKey(topic, event);
        if (!firstOccurrence.has(key)) firstOccurrence.set(key, event);
      }
    }
    const candidates = requests.flatMap(({ topic, batch }) =>
      subsByTopic.has(topic)
        ? batch
            .filter((e) => firstOccurrence.get(topicEventKey(topic, e)) === e)
            .map((event) => ({ topic, event }))
        : [],
    );
    const inserted = await events.insertFreshEvents(tx, candidates);
    const stored = new Set(inserted.map((row) => row.event));

    // The deliveries of every subscription, in publish order, queued in one round trip.
    const wokenByTopic = new Map<string, string[]>();
    const batches: { queue: string; deliveries: NewDelivery[] }[] = [];
    // The stored events by topic, in one pass (a group may span many topics).
    const rowsByTopic = new Map<string, typeof inserted>();
    for (const row of inserted) {
      const rows = rowsByTopic.get(row.topic);
      if (rows) rows.push(row);
      else rowsByTopic.set(row.topic, [row]);
    }
    for (const [topic, subs] of subsByTopic) {
      const accepts = (requests.find((r) => r.topic === topic) as PublishRequest).accepts;
      const rows = rowsByTopic.get(topic) ?? [];
      const woken: string[] = [];
      for (const sub of subs) {
        const deliveries = rows
          .filter((row) => accepts(sub, row.event))
          .map((row) => ({
            // pg-boss orders a key's jobs by (created_on, id), and created_on is one value for
            // the whole transaction: time-ordered ids keep the events of one batch in order.
            id: sub.ordering ? uuidv7() : undefined,
            eventSeq: row.seq,
            startAfter: row.event.deliverAfter,
            // Ordered queues need a key on every job; an unkeyed event gets one of its own.
            orderingKey: sub.ordering ? row.event.orderingKey || `~${row.seq}` : undefined,
          }));
        if (deliveries.length === 0) continue;
        batches.push({ queue: sub.queue, deliveries });
        woken.push(sub.name);
      }
      wokenByTopic.set(topic, woken);
    }
    // Issued together: the two statements pipeline on the transaction's connection.
    await Promise.all([
      this.queue.enqueueAll(tx, batches),
      this.notify(tx, [...wokenByTopic.values()].flat()),
    ]);

    return requests.map(({ topic, batch }): GroupResult<Published> => {
      const woken = wokenByTopic.get(topic);
      if (!woken) return { ok: false, error: notFound(`topic ${topic} does not exist`) };
      const outcomes = batch.map((event) => ({
        id: event.id,
        duplicate: !(firstOccurrence.get(topicEventKey(topic, event)) === event && stored.has(event)),
      }));
      return { ok: true, value: { outcomes, subscriptions: woken } };
    });
  }

  /** One NOTIFY per transaction, never one per event: NOTIFY serialises committing transactions. */
  private async notify(tx: TransactionSql, woken: string[]): Promise<void> {
    if (woken.length === 0) return;
    await tx`SELECT pg_notify(${WAKEUP_CHANNEL}, ${wakeupPayload(this.brokerId, woken)})`;
  }

  /**
   * The events of leased deliveries. Loads of several dispatchers that arrive while others run
   * share the next query (the same batching as commits, for a read): a broker with many busy
   * subscriptions reads their events in a few statements, not one per dispatch.
   */
  loadEvents(seqs: string[]): Promise<Map<string, StoredEvent>> {
    if (seqs.length === 0) return Promise.resolve(new Map());
    return this.loads.submit(seqs, seqs.length);
  }

  private async loadGroup(requests: string[][]): Promise<GroupResult<Map<string, StoredEvent>>[]> {
    const rows = await events.selectEventsBySeq(this.sql, [...new Set(requests.flat())]);
    const bySeq = new Map(rows.map((row) => [row.seq, row]));
    return requests.map((seqs) => ({
      ok: true,
      value: new Map(seqs.flatMap((seq) => (bySeq.has(seq) ? [[seq, bySeq.get(seq) as StoredEvent]] : []))),
    }));
  }
}
