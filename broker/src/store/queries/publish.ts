// The publish statement: a whole publish group (any mix of topics) in one statement, so one round
// trip and one commit. It
//   1. locks the topics' rows FOR NO KEY UPDATE, in name order, before it takes any seq, and keeps
//      them until commit: publishes to one topic take their seqs one transaction after another, so
//      a topic's seq order is its commit order and a subscription's cursor (queries/cursors.ts) can
//      never pass an event that commits later (migration 0040). A delete of the topic waits;
//   2. claims each event's idempotency key (a digest of its topic, source and id: migration 0031,
//      computed by the broker: event-key-digest.ts) and stores the events whose key was free;
//   3. sends one NOTIFY naming the topics, for the other brokers' dispatchers.
// It writes no delivery: subscriptions lease from their cursors. So a publish costs the same
// whatever the number of subscriptions.
import type { EventEnvelope } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";
import { eventKeyDigest } from "../event-key-digest.ts";
import { IMPLIED_TYPE_URL_PREFIX } from "./events.ts";

type Runner = Sql | TransactionSql;

export interface PublishStatement {
  /** The topics of the events (a request on a missing topic stores nothing). */
  topics: string[];
  /** Unique by (topic, source, id); `ord` is the position in this list. */
  events: { topic: string; event: EventEnvelope }[];
  /** The NOTIFY, sent only when an event was stored. */
  notify: { channel: string; payload: string } | undefined;
  /** Subscription queues (one entry each) asking for the new events of their topic, up to `room`. */
  handoffs: { queue: string; room: number }[];
}

/** The events a hand-off leased: one batch, in seq order. */
export interface HandedOff {
  batch: string;
  seqs: string[];
}

export interface PublishStatementResult {
  /** The topics that exist (locked by the statement). */
  topics: Set<string>;
  /** The stored events: positions in `events`, with their seq and publish time. */
  stored: { ord: number; seq: string; publishedAt: Date }[];
  /** By queue, the hand-offs that leased events (the others' cursors were not at the topic's head). */
  handedOff: Map<string, HandedOff>;
}

/** Runs the statement. */
export async function publishStatement(sql: Runner, p: PublishStatement): Promise<PublishStatementResult> {
  const events = p.events.map(({ topic, event: e }, ord) => ({
    ord,
    topic,
    key_digest: eventKeyDigest(topic, e.source, e.id),
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
  // The hand-off's part of the statement, left out when no subscription asked (a publish with
  // busy or no dispatchers here), so that such a publish plans and runs what it did before.
  const handoffs =
    p.handoffs.length === 0
      ? sql``
      : sql`, handoff_cursors AS (
          -- Locked after the topics (the InitPlan on locked) and in queue order, as every transaction
          -- that locks several cursors does (the grouped advances in store/queue.ts): no deadlock.
          SELECT c.queue, c.topic_id, c.position
          FROM pgmesh.cursors c
          WHERE c.queue = ANY(${p.handoffs.map((h) => h.queue)}::text[])
            AND c.topic_id = ANY((SELECT ids FROM locked)::integer[])
          ORDER BY c.queue
          FOR NO KEY UPDATE
        ), handed AS (
          -- A cursor at the topic's newest event before this statement's takes the new events, in seq
          -- order, up to its room and short of the first delayed one (a delayed event waits as a job of
          -- its own, which only a lease from the cursor writes). newest_event_before looks with a fresh
          -- snapshot (see migration 0043): this statement's may miss the publish it waited for.
          SELECT c.queue, x.seqs, q.expire_seconds
          FROM jsonb_to_recordset(${sql.json(p.handoffs.map(({ queue, room }) => ({ queue, room })))}::jsonb)
            AS h(queue text, room int)
          JOIN handoff_cursors c ON c.queue = h.queue
          JOIN pgboss.queue q ON q.name = h.queue
          CROSS JOIN LATERAL (
            SELECT array_agg(n.seq ORDER BY n.seq) AS seqs
            FROM (SELECT i.seq FROM inserted i
                  WHERE i.topic_id = c.topic_id
                    AND i.seq < coalesce((SELECT min(d.seq) FROM inserted d
                                          WHERE d.topic_id = c.topic_id AND d.deliver_after > now()),
                                         9223372036854775807)
                  ORDER BY i.seq LIMIT h.room) n
          ) x
          WHERE x.seqs IS NOT NULL AND c.position = pgmesh.newest_event_before(c.topic_id, x.seqs[1])
        ), moved AS (
          UPDATE pgmesh.cursors c SET position = h.seqs[cardinality(h.seqs)]
          FROM handed h WHERE c.queue = h.queue
          RETURNING c.queue
        ), batches AS (
          INSERT INTO pgmesh.lease_batches (id, queue, seqs, pending, leased_at, expires_at)
          SELECT gen_random_uuid(), h.queue, h.seqs, repeat('1', cardinality(h.seqs))::varbit, now(),
                 now() + h.expire_seconds * interval '1s'
          FROM handed h JOIN moved m ON m.queue = h.queue
          RETURNING id, queue, seqs
        )`;
  const handedRows =
    p.handoffs.length === 0
      ? sql``
      : sql`UNION ALL SELECT NULL, NULL, NULL, NULL, queue, id, seqs::text[] FROM batches`;
  // `locked` is a scalar subquery, so an InitPlan: every topic is locked before the first event
  // row is read, hence before any seq is taken. published_at is the clock after the lock, so it
  // rises with seq within a topic (a seek to a time searches by it).
  const rows = await sql`
    WITH locked_topics AS (
      SELECT name, id FROM pgmesh.topics WHERE name = ANY(${p.topics}::text[]) ORDER BY name FOR NO KEY UPDATE
    ), locked AS (
      SELECT coalesce(array_agg(name), '{}') AS names, coalesce(array_agg(id), '{}') AS ids FROM locked_topics
    ), input AS (
      SELECT x.*, l.ids[array_position(l.names, x.topic)] AS topic_id
      FROM jsonb_to_recordset(${sql.json(events)}::jsonb) AS x(
        ord int, topic text, key_digest uuid, id text, source text, type text, subject text, time timestamptz,
        attributes jsonb, ordering_key text, data_type_url text, data text, deliver_after timestamptz)
      CROSS JOIN (SELECT names, ids FROM locked) l
      WHERE x.topic = ANY(l.names)
    ), claimed AS (
      INSERT INTO pgmesh.event_keys (digest)
      SELECT key_digest FROM input ORDER BY ord
      ON CONFLICT DO NOTHING
      RETURNING digest
    ), inserted AS (
      INSERT INTO pgmesh.events
        (topic_id, id, source, type, subject, time, attributes, ordering_key, data_type_url, data, deliver_after,
         published_at)
      SELECT i.topic_id, i.id, i.source, i.type, i.subject, i.time, nullif(i.attributes, '{}'), i.ordering_key,
             nullif(i.data_type_url, ${IMPLIED_TYPE_URL_PREFIX}::text || i.type), decode(i.data, 'base64'),
             i.deliver_after, clock_timestamp()
      FROM input i JOIN claimed c ON c.digest = i.key_digest
      ORDER BY i.ord
      RETURNING seq, topic_id, source, id, published_at, deliver_after
    ), stored AS (
      SELECT s.seq, s.published_at, i.ord
      FROM inserted s JOIN input i ON i.topic_id = s.topic_id AND i.source = s.source AND i.id = s.id
    )${handoffs}, notified AS (
      SELECT pg_notify(${p.notify?.channel ?? ""}, ${p.notify?.payload ?? ""})
      WHERE ${p.notify !== undefined} AND EXISTS (SELECT 1 FROM inserted)
    )
    SELECT ord, seq, published_at, NULL::text[] AS topics, NULL::text AS queue, NULL::uuid AS batch,
           NULL::text[] AS seqs
    FROM stored
    UNION ALL SELECT NULL, NULL, NULL, names, NULL, NULL, NULL FROM locked
    ${handedRows}
    UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM notified`;
  const result: PublishStatementResult = { topics: new Set(), stored: [], handedOff: new Map() };
  for (const r of rows) {
    if (r.topics) for (const topic of r.topics as string[]) result.topics.add(topic);
    if (r.batch)
      result.handedOff.set(r.queue as string, { batch: String(r.batch), seqs: r.seqs as string[] });
    if (r.ord === null) continue;
    result.stored.push({ ord: r.ord as number, seq: String(r.seq), publishedAt: r.published_at as Date });
  }
  return result;
}
