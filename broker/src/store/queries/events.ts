// Named queries on pgmesh.events.
import type { EventEnvelope, StoredEvent } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";

/** An event's idempotency key within a topic, as one string: source and id, NUL-separated. */
export const eventKey = (source: string, id: string) => `${source}\u0000${id}`;

/** An event to store, with its topic (one statement stores the events of several topics). */
export interface TopicEvent {
  topic: string;
  event: EventEnvelope;
}

/**
 * Claims each event's idempotency key (topic, source, id) and stores the events whose key was
 * free, in one statement; returns those with their internal key, in input order. The input must
 * already be unique by (topic, source, id). A key is held for the idempotency window (see
 * upkeep.ts). The batch travels as one JSON parameter (payloads base64), so a publish of any size
 * is one round trip.
 */
export async function insertFreshEvents(
  tx: TransactionSql,
  input: TopicEvent[],
): Promise<{ seq: string; topic: string; event: EventEnvelope }[]> {
  if (input.length === 0) return [];
  const rows = input.map(({ topic, event: e }, ord) => ({
    ord,
    topic,
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
  const inserted = await tx`
    WITH input AS (
      SELECT * FROM jsonb_to_recordset(${tx.json(rows)}::jsonb) AS x(
        ord int, topic text, id text, source text, type text, subject text, time timestamptz,
        attributes jsonb, ordering_key text, data_type_url text, data text, deliver_after timestamptz)
    ), claimed AS (
      INSERT INTO pgmesh.event_keys (topic, source, id)
      SELECT topic, source, id FROM input ORDER BY ord
      ON CONFLICT DO NOTHING
      RETURNING topic, source, id
    )
    INSERT INTO pgmesh.events
      (topic, id, source, type, subject, time, attributes, ordering_key, data_type_url, data, deliver_after)
    SELECT i.topic, i.id, i.source, i.type, i.subject, i.time, i.attributes, i.ordering_key,
           i.data_type_url, decode(i.data, 'base64'), i.deliver_after
    FROM input i JOIN claimed c ON c.topic = i.topic AND c.source = i.source AND c.id = i.id
    ORDER BY i.ord
    RETURNING seq, topic, source, id`;
  // Matched back by key: (topic, source, id) is unique in the input.
  const positionOf = new Map(input.map(({ topic, event }, ord) => [topicEventKey(topic, event), ord]));
  return inserted
    .map((r) => {
      const ord = positionOf.get(
        topicEventKey(r.topic as string, { source: r.source as string, id: r.id as string }),
      ) as number;
      return { ord, seq: String(r.seq), ...(input[ord] as TopicEvent) };
    })
    .sort((a, b) => a.ord - b.ord)
    .map(({ seq, topic, event }) => ({ seq, topic, event }));
}

/** An event's idempotency key across topics. */
export const topicEventKey = (topic: string, event: Pick<EventEnvelope, "source" | "id">) =>
  `${topic}\u0000${eventKey(event.source, event.id)}`;

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
