// Named queries on pgmesh.events.
import type { EventEnvelope, StoredEvent } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";

/** An event's idempotency key within a topic, as one string: source and id, NUL-separated. */
export const eventKey = (source: string, id: string) => `${source}\u0000${id}`;

/**
 * Claims the idempotency keys (topic, source, id) of the events; returns the keys that were free,
 * as `source\0id`. A key is held for the idempotency window (see deleteEventKeysOlderThan).
 */
export async function claimEventKeys(
  tx: TransactionSql,
  topic: string,
  events: EventEnvelope[],
): Promise<Set<string>> {
  if (events.length === 0) return new Set();
  const rows = await tx`
    INSERT INTO pgmesh.event_keys (topic, source, id)
    SELECT ${topic}, x.source, x.id FROM unnest(${events.map((e) => e.source)}::text[], ${events.map((e) => e.id)}::text[]) AS x(source, id)
    ON CONFLICT DO NOTHING
    RETURNING source, id`;
  return new Set(rows.map((r) => eventKey(r.source as string, r.id as string)));
}

export async function deleteEventKeysOlderThan(sql: Sql, seconds: number): Promise<number> {
  const rows = await sql`
    DELETE FROM pgmesh.event_keys WHERE ctid IN (
      SELECT ctid FROM pgmesh.event_keys WHERE published_at < now() - ${seconds} * interval '1 second' LIMIT 10000)
    RETURNING 1`;
  return rows.length;
}

/** Inserts the events (already deduplicated) and returns each with its internal key. */
export async function insertEvents(
  tx: TransactionSql,
  topic: string,
  events: EventEnvelope[],
): Promise<{ seq: string; event: EventEnvelope }[]> {
  if (events.length === 0) return [];
  const rows = events.map((e) => ({
    topic,
    id: e.id,
    source: e.source,
    type: e.type,
    subject: e.subject,
    time: e.time ?? null,
    attributes: e.attributes,
    ordering_key: e.orderingKey,
    data_type_url: e.dataTypeUrl,
    data: Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength),
    deliver_after: e.deliverAfter ?? null,
  }));
  const inserted = await tx`INSERT INTO pgmesh.events ${tx(rows)} RETURNING seq, source, id`;
  // Matched back by key: the events were deduplicated, so (source, id) is unique here.
  const byKey = new Map(events.map((e) => [eventKey(e.source, e.id), e]));
  return inserted.map((r) => ({
    seq: String(r.seq),
    event: byKey.get(eventKey(r.source as string, r.id as string)) as EventEnvelope,
  }));
}

export async function selectEventsBySeq(sql: Sql, seqs: string[]): Promise<StoredEvent[]> {
  const rows = await sql`
    SELECT seq, topic, id, source, type, subject, time, attributes, ordering_key,
           data_type_url, data, published_at, deliver_after
    FROM pgmesh.events WHERE seq = ANY(${seqs}::bigint[])`;
  return rows.map(toStoredEvent);
}

/** Maps a row of pgmesh.events (all columns) to the domain record. */
export function toStoredEvent(r: Record<string, unknown>): StoredEvent {
  return {
    seq: String(r.seq),
    topic: r.topic as string,
    id: r.id as string,
    source: r.source as string,
    type: r.type as string,
    subject: r.subject as string,
    time: (r.time as Date | null) ?? undefined,
    attributes: r.attributes as Record<string, string>,
    orderingKey: r.ordering_key as string,
    dataTypeUrl: r.data_type_url as string,
    data: r.data as Uint8Array,
    publishedAt: r.published_at as Date,
    deliverAfter: (r.deliver_after as Date | null) ?? undefined,
  };
}
