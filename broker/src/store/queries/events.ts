// Named queries on pgmesh.events.
import type { EventEnvelope, StoredEvent } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";

/**
 * Inserts the events that are new; an event whose (topic, source, id) exists already is skipped.
 * Returns the inserted rows' keys.
 */
export async function insertEvents(
  tx: TransactionSql,
  topic: string,
  events: EventEnvelope[],
): Promise<{ seq: string; source: string; id: string; deliverAfter: Date | undefined }[]> {
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
  const inserted = await tx`
    INSERT INTO pgmesh.events ${tx(rows)}
    ON CONFLICT (topic, source, id) DO NOTHING
    RETURNING seq, source, id, deliver_after`;
  return inserted.map((r) => ({
    seq: String(r.seq),
    source: r.source as string,
    id: r.id as string,
    deliverAfter: (r.deliver_after as Date | null) ?? undefined,
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
