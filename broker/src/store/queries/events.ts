// Named queries on pgmesh.events.
import type { EventEnvelope, StoredEvent } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";

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

/** Events by topic and seq (the primary key); a pair whose event is gone is left out. */
export async function selectEvents(sql: Sql, keys: { topic: string; seq: string }[]): Promise<StoredEvent[]> {
  const rows = await sql`
    SELECT e.*, x.topic
    FROM unnest(${keys.map((k) => k.topic)}::text[], ${keys.map((k) => k.seq)}::bigint[]) AS x(topic, seq)
    JOIN pgmesh.topics t ON t.name = x.topic
    JOIN pgmesh.events e ON e.topic_id = t.id AND e.seq = x.seq`;
  return rows.map(toStoredEvent);
}

/**
 * The event's topic by name, as a column `topic` for toStoredEvent (events name their topic by id,
 * migration 0042; a topic deleted since has none).
 */
export const topicName = (sql: Sql | TransactionSql, alias: string) =>
  sql.unsafe(`coalesce((SELECT t.name FROM pgmesh.topics t WHERE t.id = ${alias}.topic_id), '') AS topic`);

/** Maps a row of pgmesh.events (all columns, and `topic` by name) to the domain record. */
export function toStoredEvent(r: Record<string, unknown>): StoredEvent {
  return {
    seq: String(r.seq),
    topic: r.topic as string,
    id: r.id as string,
    source: r.source as string,
    type: r.type as string,
    subject: r.subject as string,
    time: (r.time as Date | null) ?? undefined,
    // NULL when the event has none (migration 0042).
    attributes: (r.attributes as Record<string, string> | null) ?? {},
    orderingKey: r.ordering_key as string,
    dataTypeUrl: (r.data_type_url as string | null) ?? IMPLIED_TYPE_URL_PREFIX + (r.type as string),
    data: r.data as Uint8Array,
    publishedAt: r.published_at as Date,
    deliverAfter: (r.deliver_after as Date | null) ?? undefined,
  };
}

/**
 * A page of a topic's stored events over the (topic_id, seq) index: ascending from a seq
 * (inclusive), or descending before one (exclusive; none: from the newest).
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
          SELECT e.*, ${topic}::text AS topic FROM pgmesh.events e
          WHERE e.topic_id = pgmesh.topic_id(${topic}) AND e.seq >= ${from.seq}::bigint
          ORDER BY e.topic_id, e.seq LIMIT ${limit}`
      : await sql`
          SELECT e.*, ${topic}::text AS topic FROM pgmesh.events e
          WHERE e.topic_id = pgmesh.topic_id(${topic})
            AND e.seq < ${from.before ?? "9223372036854775807"}::bigint
          ORDER BY e.topic_id DESC, e.seq DESC LIMIT ${limit}`;
  return rows.map(toStoredEvent);
}
