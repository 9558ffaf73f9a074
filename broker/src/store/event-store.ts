// Publishing and reading events. A publish group (concurrent publishes, any topics: see
// group-commit.ts) is one statement (queries/publish.ts): each new event is stored once and one
// NOTIFY wakes the other brokers. One round trip and one commit, however many topics. Deliveries
// are written at publish only for the subscriptions that ask for a hand-off (this broker's idle
// dispatchers, a batch row each); the others lease from their cursors, so its cost does not grow
// with the subscriptions.
import { notFound } from "../delivery/errors.ts";
import type { EventEnvelope, HandedDelivery, HandoffAsk, Published, StoredEvent } from "../delivery/model.ts";
import type { EventStore } from "../delivery/ports.ts";
import type { Sql, TransactionSql } from "./database.ts";
import { GroupCommit, type GroupResult } from "./group-commit.ts";
import * as events from "./queries/events.ts";
import { topicEventKey } from "./queries/events.ts";
import { slotLease } from "./queries/lease-batches.ts";
import { type PublishStatement, publishStatement } from "./queries/publish.ts";
import { WAKEUP_CHANNEL, wakeupPayload } from "./wakeups.ts";

interface PublishRequest {
  topic: string;
  batch: EventEnvelope[];
  handoffs?: HandoffAsk[] | undefined;
}

/** Publishes committing at once; the next group fills while they flush. */
const PUBLISH_GROUPS_IN_FLIGHT = 2;
/** Event loads running at once, and the most events one load query reads. */
const LOADS_IN_FLIGHT = 2;
const LOAD_GROUP_MAX_EVENTS = 2_000;
/** Events in one publish statement at most (a single larger request still goes alone). */
const PUBLISH_GROUP_MAX_EVENTS = 5_000;

export class PostgresEventStore implements EventStore {
  private readonly commits: GroupCommit<PublishRequest, Published>;
  private readonly loads = new GroupCommit<{ topic: string; seqs: string[] }, Map<string, StoredEvent>>(
    (requests) => this.loadGroup(requests),
    {
      maxInFlight: LOADS_IN_FLIGHT,
      maxWeight: LOAD_GROUP_MAX_EVENTS,
    },
  );

  constructor(
    private readonly sql: Sql,
    private readonly brokerId: string,
  ) {
    this.commits = new GroupCommit((requests) => this.publishWith(this.sql, requests), {
      maxInFlight: PUBLISH_GROUPS_IN_FLIGHT,
      maxWeight: PUBLISH_GROUP_MAX_EVENTS,
    });
  }

  /** Publishes in a statement shared with the publishes that arrive while others commit. */
  publish(topic: string, batch: EventEnvelope[], handoffs?: HandoffAsk[]): Promise<Published> {
    return this.commits.submit({ topic, batch, handoffs }, batch.length);
  }

  /**
   * Publishes, inside the caller's transaction (the outbox relay's), requests on any topics in one
   * statement; returns the topics that stored events. A missing topic fails them all.
   */
  async publishIn(tx: TransactionSql, requests: PublishRequest[]): Promise<string[]> {
    if (requests.length === 0) return [];
    const results = await this.publishWith(tx, requests);
    const stored = new Set<string>();
    results.forEach((result, i) => {
      if (!result.ok) throw result.error;
      if (result.value.stored > 0) stored.add(requests[i]?.topic as string);
    });
    return [...stored];
  }

  /**
   * Several publish requests, on any topics, in one statement. Events are taken in arrival order,
   * so a repeat across requests resolves to the first. A request on a missing topic fails alone.
   */
  private async publishWith(
    sql: Sql | TransactionSql,
    requests: PublishRequest[],
  ): Promise<GroupResult<Published>[]> {
    // Repeats are duplicates of their first occurrence.
    const firstOccurrence = new Map<string, EventEnvelope>();
    const candidates: { topic: string; event: EventEnvelope }[] = [];
    for (const { topic, batch } of requests) {
      for (const event of batch) {
        const key = topicEventKey(topic, event);
        if (firstOccurrence.has(key)) continue;
        firstOccurrence.set(key, event);
        candidates.push({ topic, event });
      }
    }
    const topics = [...new Set(requests.map((r) => r.topic))].sort();
    // A queue asks once per statement: the first request that asks for it gets what it leased.
    const askedBy = new Map<string, PublishRequest>();
    const handoffs: HandoffAsk[] = [];
    for (const request of requests) {
      for (const ask of request.handoffs ?? []) {
        if (askedBy.has(ask.queue)) continue;
        askedBy.set(ask.queue, request);
        handoffs.push(ask);
      }
    }
    const statement: PublishStatement = {
      topics,
      events: candidates,
      notify: { channel: WAKEUP_CHANNEL, payload: wakeupPayload(this.brokerId, topics) },
      handoffs,
    };
    const result = await publishStatement(sql, statement);
    const storedEvents = new Set(result.stored.map((s) => candidates[s.ord]?.event));
    const newest = new Map<string, string>();
    const storedBySeq = new Map<string, StoredEvent>();
    for (const { ord, seq, publishedAt } of result.stored) {
      const { topic, event } = candidates[ord] as { topic: string; event: EventEnvelope };
      if (BigInt(seq) > BigInt(newest.get(topic) ?? "0")) newest.set(topic, seq);
      if (result.handedOff.size > 0) storedBySeq.set(seq, { ...event, seq, topic, publishedAt });
    }
    const handedOff = new Map<PublishRequest, Map<string, HandedDelivery[]>>();
    for (const [queue, { batch, seqs }] of result.handedOff) {
      const request = askedBy.get(queue) as PublishRequest;
      const byQueue = handedOff.get(request) ?? new Map<string, HandedDelivery[]>();
      byQueue.set(
        queue,
        seqs.map((seq, index) => ({
          lease: slotLease(batch, index, seqs.length, seq),
          event: storedBySeq.get(seq) as StoredEvent,
        })),
      );
      handedOff.set(request, byQueue);
    }

    return requests.map((request): GroupResult<Published> => {
      const { topic, batch } = request;
      if (!result.topics.has(topic)) return { ok: false, error: notFound(`topic ${topic} does not exist`) };
      let stored = 0;
      const outcomes = batch.map((event) => {
        const duplicate = !(
          firstOccurrence.get(topicEventKey(topic, event)) === event && storedEvents.has(event)
        );
        if (!duplicate) stored++;
        return { id: event.id, duplicate };
      });
      return {
        ok: true,
        value: {
          outcomes,
          stored,
          newest: newest.get(topic),
          handedOff: handedOff.get(request) ?? new Map(),
        },
      };
    });
  }

  /**
   * The events of leased deliveries. Loads of several dispatchers that arrive while others run
   * share the next query (the same batching as commits, for a read): a broker with many busy
   * subscriptions reads their events in a few statements, not one per dispatch.
   */
  loadEvents(topic: string, seqs: string[]): Promise<Map<string, StoredEvent>> {
    if (seqs.length === 0) return Promise.resolve(new Map());
    return this.loads.submit({ topic, seqs }, seqs.length);
  }

  private async loadGroup(
    requests: { topic: string; seqs: string[] }[],
  ): Promise<GroupResult<Map<string, StoredEvent>>[]> {
    const keys = new Map<string, { topic: string; seq: string }>();
    for (const { topic, seqs } of requests) for (const seq of seqs) keys.set(seq, { topic, seq });
    const rows = await events.selectEvents(this.sql, [...keys.values()]);
    const bySeq = new Map(rows.map((row) => [row.seq, row]));
    return requests.map(({ seqs }) => ({
      ok: true,
      value: new Map(seqs.flatMap((seq) => (bySeq.has(seq) ? [[seq, bySeq.get(seq) as StoredEvent]] : []))),
    }));
  }
}
