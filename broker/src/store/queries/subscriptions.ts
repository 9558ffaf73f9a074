// Named queries on pgmesh.subscriptions.
import type { DeliveryPolicy, Subscription } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";

type Runner = Sql | TransactionSql;

export type SubscriptionRow = Subscription;

const toSubscription = (row: Record<string, unknown>): SubscriptionRow => ({
  name: row.name as string,
  topic: row.topic as string,
  queue: row.queue as string,
  ackDeadlineSeconds: row.ack_deadline_seconds as number,
  ackedRetentionSeconds: row.acked_retention_seconds as number,
  ordering: row.ordering as boolean,
  filter: row.filter as string,
  maxDeliveryAttempts: row.max_delivery_attempts as number,
  deadLettering: row.dead_lettering as boolean,
  retryPolicy: {
    initialBackoffSeconds: row.backoff_initial_seconds as number,
    maxBackoffSeconds: row.backoff_max_seconds as number,
    multiplier: row.backoff_multiplier as number,
    jitter: row.backoff_jitter as number,
  },
  createdAt: row.created_at as Date,
});

const COLUMNS = `name, topic, queue, ack_deadline_seconds, acked_retention_seconds, ordering, filter,
  max_delivery_attempts, dead_lettering,
  backoff_initial_seconds, backoff_max_seconds, backoff_multiplier, backoff_jitter, created_at`;

const policyColumns = (policy: DeliveryPolicy) => ({
  ack_deadline_seconds: policy.ackDeadlineSeconds,
  acked_retention_seconds: policy.ackedRetentionSeconds,
  max_delivery_attempts: policy.maxDeliveryAttempts,
  dead_lettering: policy.deadLettering,
  backoff_initial_seconds: policy.retryPolicy.initialBackoffSeconds,
  backoff_max_seconds: policy.retryPolicy.maxBackoffSeconds,
  backoff_multiplier: policy.retryPolicy.multiplier,
  backoff_jitter: policy.retryPolicy.jitter,
});

/** Inserts the subscription; undefined when the name is taken. */
export async function insertSubscription(
  sql: Runner,
  sub: { name: string; topic: string; queue: string; ordering: boolean; filter: string } & DeliveryPolicy,
): Promise<SubscriptionRow | undefined> {
  const row = {
    name: sub.name,
    topic: sub.topic,
    queue: sub.queue,
    ordering: sub.ordering,
    filter: sub.filter,
    ...policyColumns(sub),
  };
  const rows = await sql`
    INSERT INTO pgmesh.subscriptions ${sql(row)}
    ON CONFLICT (name) DO NOTHING
    RETURNING ${sql.unsafe(COLUMNS)}`;
  return rows[0] ? toSubscription(rows[0]) : undefined;
}

export async function updateSubscriptionPolicy(
  sql: Runner,
  name: string,
  policy: DeliveryPolicy,
): Promise<SubscriptionRow | undefined> {
  const rows = await sql`
    UPDATE pgmesh.subscriptions SET ${sql(policyColumns(policy))} WHERE name = ${name}
    RETURNING ${sql.unsafe(COLUMNS)}`;
  return rows[0] ? toSubscription(rows[0]) : undefined;
}

export async function selectSubscription(sql: Runner, name: string): Promise<SubscriptionRow | undefined> {
  const rows = await sql`SELECT ${sql.unsafe(COLUMNS)} FROM pgmesh.subscriptions WHERE name = ${name}`;
  return rows[0] ? toSubscription(rows[0]) : undefined;
}

/**
 * The topics that exist among `topics`, each with its subscriptions (a missing topic is absent
 * from the map). Read without locks: a publish checks this list against the locked rows in its
 * own statement (queries/publish.ts), so a stale list can never store an event.
 */
export async function selectPublishCatalog(
  sql: Runner,
  topics: string[],
): Promise<Map<string, SubscriptionRow[]>> {
  const [topicRows, rows] = await Promise.all([
    sql`SELECT name FROM pgmesh.topics WHERE name = ANY(${topics}::text[])`,
    sql`SELECT ${sql.unsafe(COLUMNS)} FROM pgmesh.subscriptions WHERE topic = ANY(${topics}::text[])
       ORDER BY name`,
  ]);
  const found = new Map<string, SubscriptionRow[]>(topicRows.map((r) => [r.name as string, []]));
  for (const row of rows) found.get(row.topic as string)?.push(toSubscription(row));
  return found;
}

export async function selectSubscriptionsAfter(
  sql: Runner,
  topic: string,
  after: string,
  limit: number,
): Promise<SubscriptionRow[]> {
  const rows = topic
    ? await sql`SELECT ${sql.unsafe(COLUMNS)} FROM pgmesh.subscriptions
        WHERE topic = ${topic} AND name > ${after} ORDER BY name LIMIT ${limit}`
    : await sql`SELECT ${sql.unsafe(COLUMNS)} FROM pgmesh.subscriptions
        WHERE name > ${after} ORDER BY name LIMIT ${limit}`;
  return rows.map(toSubscription);
}

/**
 * Deletes the subscription (in the caller's transaction). Its cursor and leased batches go first,
 * in the order a lease and a settle lock them (the cursor, then a batch, then the subscription's key
 * for a failure row's foreign key): cascading from the subscription row took them the other way
 * round, and deadlocked with a closing stream's settle (publish-statement.test.ts).
 */
export async function deleteSubscriptionRow(sql: Runner, name: string): Promise<SubscriptionRow | undefined> {
  const queue = sql`SELECT queue FROM pgmesh.subscriptions WHERE name = ${name}`;
  await sql`DELETE FROM pgmesh.cursors WHERE queue = (${queue})`;
  await sql`DELETE FROM pgmesh.lease_batches WHERE queue = (${queue})`;
  const rows =
    await sql`DELETE FROM pgmesh.subscriptions WHERE name = ${name} RETURNING ${sql.unsafe(COLUMNS)}`;
  return rows[0] ? toSubscription(rows[0]) : undefined;
}
