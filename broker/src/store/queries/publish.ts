// The publish statement: a whole publish group (any mix of topics) in one statement, so one round
// trip and one commit. It
//   1. locks the topics and their subscriptions (FOR SHARE, as a delete locks them) and checks
//      them against the list the broker routed with (its filters run in the broker): a list that
//      went stale aborts the statement (pgmesh.assert_publish_catalog, SQLSTATE PM001) before
//      anything is stored;
//   2. claims each event's idempotency key (a digest of its topic, source and id: migration 0031,
//      computed by the broker: event-key-digest.ts) and stores the events whose key was free;
//   3. queues one pg-boss job per (stored event, subscription that takes it), for every queue at
//      once: fan-out to ten subscriptions is one INSERT, not ten. The jobs this broker's streams
//      reserved window for (lease at publish) go in already leased, as pg-boss's fetch would leave
//      them (state active, started and heartbeat now, first attempt), and come back with their ids;
//   4. sends one NOTIFY for the other brokers, if any job was queued.
//
// The jobs' ids begin with the statement's time (job-ids.ts), so a statement's jobs sit together
// in the job table's primary key.
//
// Step 3 writes pg-boss's job table directly (pg-boss's insert() takes one queue per call). Its
// columns are filled exactly as pg-boss 12.38's own insert fills them from the queue's settings;
// broker/test/integration/publish-statement.test.ts compares the rows with pg-boss's and fails on
// any difference, so a pg-boss upgrade that changes them is caught.
import type { EventEnvelope } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";
import { eventKeyDigest } from "../event-key-digest.ts";
import { jobIdTimePrefix } from "../job-ids.ts";
import { IMPLIED_TYPE_URL_PREFIX } from "./events.ts";

type Runner = Sql | TransactionSql;

/** The ordering key asked for an unkeyed event on an ordered subscription: one of its own, "~<seq>". */
export const OWN_KEY = "~";

/** SQLSTATE of pgmesh.assert_publish_catalog: the routing list is stale; reload it and publish again. */
export const STALE_CATALOG = "PM001";

export interface PublishStatement {
  /** The topics the broker believes exist (every event's topic is one of them). */
  topics: string[];
  /** The queues of every subscription of those topics, as the broker routed with them. */
  queues: string[];
  /** Unique by (topic, source, id); `ord` is the position in this list. */
  events: { topic: string; event: EventEnvelope }[];
  /** Every stored event of `topic` gets a job on `queue` (a subscription without filter or order). */
  broadcast: { topic: string; queue: string }[];
  /**
   * Event `ord` gets a job on `queue`, with this id and ordering key (filtered or ordered
   * subscriptions), leased at once when `leased` (a stream of this broker reserved window for it).
   */
  picked: {
    ord: number;
    queue: string;
    id?: string | undefined;
    key?: string | undefined;
    leased?: boolean | undefined;
  }[];
  /** The NOTIFY, sent only when a job was queued. */
  notify: { channel: string; payload: string } | undefined;
}

export interface PublishStatementResult {
  /** The stored events: positions in `events`, with their seq and publish time. */
  stored: { ord: number; seq: string; publishedAt: Date }[];
  /** The jobs inserted leased (picked with `leased`), by event position. */
  leased: { ord: number; queue: string; jobId: string }[];
}

/** Runs the statement. */
export async function publishStatement(sql: Runner, p: PublishStatement): Promise<PublishStatementResult> {
  if (p.events.length === 0) return { stored: [], leased: [] };
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
  const broadcast = p.broadcast.map(({ topic, queue }) => ({ t: topic, q: queue }));
  const picked = p.picked.map(({ ord, queue, id, key, leased }) => ({
    o: ord,
    q: queue,
    id: id ?? null,
    k: key ?? null,
    a: leased === true,
  }));
  const rows = await sql`
    WITH locked_topics AS (
      SELECT name FROM pgmesh.topics WHERE name = ANY(${p.topics}::text[]) ORDER BY name FOR SHARE
    ), locked_subscriptions AS (
      SELECT queue FROM pgmesh.subscriptions WHERE topic = ANY(${p.topics}::text[]) ORDER BY name FOR SHARE
    ), catalog AS (
      SELECT pgmesh.assert_publish_catalog(
        (SELECT count(*) FROM locked_topics) = cardinality(${p.topics}::text[])
        AND (SELECT count(*) FROM locked_subscriptions) = cardinality(${p.queues}::text[])
        AND NOT EXISTS (SELECT queue FROM locked_subscriptions EXCEPT SELECT unnest(${p.queues}::text[]))
      ) AS ok
    ), input AS (
      SELECT x.*
      FROM jsonb_to_recordset(${sql.json(events)}::jsonb) AS x(
        ord int, topic text, key_digest uuid, id text, source text, type text, subject text, time timestamptz,
        attributes jsonb, ordering_key text, data_type_url text, data text, deliver_after timestamptz)
      WHERE (SELECT ok FROM catalog)
    ), claimed AS (
      INSERT INTO pgmesh.event_keys (digest)
      SELECT key_digest FROM input ORDER BY ord
      ON CONFLICT DO NOTHING
      RETURNING digest
    ), inserted AS (
      INSERT INTO pgmesh.events
        (topic, id, source, type, subject, time, attributes, ordering_key, data_type_url, data, deliver_after)
      SELECT i.topic, i.id, i.source, i.type, i.subject, i.time, i.attributes, i.ordering_key,
             nullif(i.data_type_url, ${IMPLIED_TYPE_URL_PREFIX}::text || i.type), decode(i.data, 'base64'),
             i.deliver_after
      FROM input i JOIN claimed c ON c.digest = i.key_digest
      ORDER BY i.ord
      RETURNING seq, topic, source, id, deliver_after, published_at
    ), stored AS (
      SELECT s.seq, s.topic, s.deliver_after, s.published_at, i.ord
      FROM inserted s JOIN input i ON i.topic = s.topic AND i.source = s.source AND i.id = s.id
    ), deliveries AS (
      SELECT s.seq, s.ord, s.deliver_after, b.q AS queue, NULL::uuid AS id, NULL::text AS key, false AS leased
      FROM stored s JOIN jsonb_to_recordset(${sql.json(broadcast)}::jsonb) AS b(t text, q text) ON b.t = s.topic
      UNION ALL
      SELECT s.seq, s.ord, s.deliver_after, k.q, k.id,
             CASE WHEN k.k = ${OWN_KEY}::text THEN ${OWN_KEY}::text || s.seq::text ELSE k.k END, k.a
      FROM stored s
      JOIN jsonb_to_recordset(${sql.json(picked)}::jsonb) AS k(o int, q text, id uuid, k text, a boolean) ON k.o = s.ord
    ), jobs AS (
      INSERT INTO pgboss.job (id, name, data, priority, start_after, created_on, singleton_key,
        expire_seconds, deletion_seconds, keep_until, retry_limit, retry_delay, retry_backoff,
        retry_delay_max, policy, dead_letter, heartbeat_seconds, state, started_on, heartbeat_on)
      SELECT coalesce(d.id, (${jobIdTimePrefix()}::text
               || lpad(to_hex((random() * 4503599627370496)::bigint), 13, '0')
               || lpad(to_hex((random() * 134217728)::bigint), 7, '0'))::uuid),
             d.queue, jsonb_build_object('e', d.seq::text), 0,
             d.start_after, pgboss.job_now(), d.key, q.expire_seconds, q.deletion_seconds,
             d.start_after + q.retention_seconds * interval '1s', q.retry_limit, q.retry_delay,
             q.retry_backoff, q.retry_delay_max, q.policy, q.dead_letter, q.heartbeat_seconds,
             CASE WHEN d.leased THEN 'active'::pgboss.job_state ELSE 'created'::pgboss.job_state END,
             CASE WHEN d.leased THEN pgboss.job_now() END, CASE WHEN d.leased THEN pgboss.job_now() END
      FROM (SELECT *, coalesce(deliver_after, pgboss.job_now()) AS start_after FROM deliveries) d
      JOIN pgboss.queue q ON q.name = d.queue
      ORDER BY d.ord
      RETURNING id, name, (data->>'e')::bigint AS seq, state = 'active' AS leased
    ), notified AS (
      SELECT pg_notify(${p.notify?.channel ?? ""}, ${p.notify?.payload ?? ""})
      WHERE ${p.notify !== undefined} AND EXISTS (SELECT 1 FROM jobs WHERE NOT leased)
    )
    SELECT ord, seq, published_at, NULL::uuid AS job_id, NULL::text AS queue FROM stored
    UNION ALL
    SELECT s.ord, NULL, NULL, j.id, j.name FROM jobs j JOIN stored s ON s.seq = j.seq WHERE j.leased
    UNION ALL SELECT NULL, NULL, NULL, NULL, NULL FROM notified`;
  const result: PublishStatementResult = { stored: [], leased: [] };
  for (const r of rows) {
    if (r.ord === null) continue;
    if (r.job_id === null)
      result.stored.push({ ord: r.ord as number, seq: String(r.seq), publishedAt: r.published_at as Date });
    else result.leased.push({ ord: r.ord as number, queue: r.queue as string, jobId: r.job_id as string });
  }
  return result;
}
