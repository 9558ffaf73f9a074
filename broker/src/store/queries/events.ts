// Named queries on pgmesh.events.
import type { EventEnvelope, StoredEvent } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";

/** An event's idempotency key within a topic, as one string: source and id, NUL-separated. */
export const eventKey = (source: string, id: string) => `${source}\u0000${id}`;

/**
 * Claims each event's idempotency key (topic, source, id) and stores the events whose key was
 * free, in one statement; returns those with their internal key, in input order. The events must
 * already be unique by (source, id). A key is held for the idempotency window (see
 * upkeep.ts). The batch travels as one JSON parameter (payloads base64), so a
 * publish of any size is one round trip.
 */
export async function insertFreshEvents(
  tx: TransactionSql,
  topic: string,
  events: EventEnvelope[],
): Promise<{ seq: string; event: EventEnvelope }[]> {
  if (events.length === 0) return [];
  const input = events.map((e, ord) => ({
    ord,
    id: e.id,
    source: e.source,
    type: e.type,
    subject: e.subject,
    time: e.time?.toISOString() ?? null,
    attributes: e.attributes,
    ordering_key: e.orderingKey,
    data_type_url: e.dataTypeUrl,
    data: Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString("base64"),
    deliver_after: e.deliverAfter?.toISOString() ?? null,
  }));
  const rows = await tx`
    WITH input AS (
      SELECT * FROM jsonb_to_recordset(${tx.json(input)}::jsonb) AS x(
        ord int, id text, source text, type text, subject text, time timestamptz, attributes jsonb,
        ordering_key text, data_type_url text, data text, deliver_after timestamptz)
    ), claimed AS (
      INSERT INTO pgmesh.event_keys (topic, source, id)
      SELECT ${topic}, source, id FROM input ORDER BY ord
      ON CONFLICT DO NOTHING
      RETURNING source, id
    )
    INSERT INTO pgmesh.events
      (topic, id, source, type, subject, time, attributes, ordering_key, data_type_url, data, deliver_after)
    SELECT ${topic}, i.id, i.source, i.type, i.subject, i.time, i.attributes, i.ordering_key,
           i.data_type_url, decode(i.data, 'base64'), i.deliver_after
    FROM input i JOIN claimed c ON c.source = i.source AND c.id = i.id
    ORDER BY i.ord
    RETURNING seq, source, id`;
  // Matched back by key: (source, id) is unique in the batch.
  const positionOf = new Map(events.map((e, ord) => [eventKey(e.source, e.id), ord]));
  return rows
    .map((r) => {
      const ord = positionOf.get(eventKey(r.source as string, r.id as string)) as number;
      return { ord, seq: String(r.seq), event: events[ord] as EventEnvelope };
    })
    .sort((a, b) => a.ord - b.ord)
    .map(({ seq, event }) => ({ seq, event }));
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
