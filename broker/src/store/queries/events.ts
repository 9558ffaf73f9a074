// Named queries on pgmesh.events.
import type { EventEnvelope, StoredEvent } from "../../delivery/model.ts";
import type { Sql } from "../database.ts";

/**
 * An event row's type URL is NULL when it is this prefix and the event's type (migration 0032):
 * the standard URL is not stored again in every row.
 */
export const IMPLIED_TYPE_URL_PREFIX = "type.googleapis.com/";

/** An event's idempotency key within a topic, as one string: source and id, NUL-separated. */
export const eventKey = (source: string, id: string) => `${source}\u0000${id}`;

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
    dataTypeUrl: (r.data_type_url as string | null) ?? IMPLIED_TYPE_URL_PREFIX + (r.type as string),
    data: r.data as Uint8Array,
    publishedAt: r.published_at as Date,
    deliverAfter: (r.deliver_after as Date | null) ?? undefined,
  };
}

/**
 * A page of a topic's stored events over the (topic, seq) index: ascending from a seq (inclusive),
 * or descending before one (exclusive; none: from the newest).
 */
export async function selectTopicEvents(
  sql: Sql,
  topic: string,
  from: { direction: "up"; seq: string } | { direction: "down"; before: string | undefined },
  limit: number,
): Promise<StoredEvent[]> {
  const rows =
    from.direction === "up"
      ? await sql`
          SELECT seq, topic, id, source, type, subject, time, attributes, ordering_key,
                 data_type_url, data, published_at, deliver_after
          FROM pgmesh.events WHERE topic = ${topic} AND seq >= ${from.seq}::bigint
          ORDER BY topic, seq LIMIT ${limit}`
      : await sql`
          SELECT seq, topic, id, source, type, subject, time, attributes, ordering_key,
                 data_type_url, data, published_at, deliver_after
          FROM pgmesh.events
          WHERE topic = ${topic} AND seq < ${from.before ?? "9223372036854775807"}::bigint
          ORDER BY topic DESC, seq DESC LIMIT ${limit}`;
  return rows.map(toStoredEvent);
}
