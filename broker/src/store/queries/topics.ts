// Named queries on pgmesh.topics.
import type { Topic, TopicSchema } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";

type Runner = Sql | TransactionSql;

const toTopic = (row: Record<string, unknown>): Topic => ({
  name: row.name as string,
  createdAt: row.created_at as Date,
  retentionSeconds: row.retention_seconds as number,
});

/** Inserts the topic; undefined when it already exists. */
export async function insertTopic(
  sql: Runner,
  name: string,
  retentionSeconds: number,
): Promise<Topic | undefined> {
  const rows = await sql`
    INSERT INTO pgmesh.topics (name, retention_seconds) VALUES (${name}, ${retentionSeconds})
    ON CONFLICT (name) DO NOTHING
    RETURNING name, created_at, retention_seconds`;
  return rows[0] ? toTopic(rows[0]) : undefined;
}

export async function selectTopic(sql: Runner, name: string): Promise<Topic | undefined> {
  const rows = await sql`SELECT name, created_at, retention_seconds FROM pgmesh.topics WHERE name = ${name}`;
  return rows[0] ? toTopic(rows[0]) : undefined;
}

export async function updateTopicRetention(
  sql: Runner,
  name: string,
  retentionSeconds: number,
): Promise<Topic | undefined> {
  const rows = await sql`
    UPDATE pgmesh.topics SET retention_seconds = ${retentionSeconds} WHERE name = ${name}
    RETURNING name, created_at, retention_seconds`;
  return rows[0] ? toTopic(rows[0]) : undefined;
}

/** Locks the topic against deletion for the rest of the transaction. */
export async function lockTopicShared(tx: TransactionSql, name: string): Promise<boolean> {
  const rows = await tx`SELECT 1 FROM pgmesh.topics WHERE name = ${name} FOR SHARE`;
  return rows.length > 0;
}

export async function selectTopicsAfter(sql: Runner, after: string, limit: number): Promise<Topic[]> {
  const rows = await sql`
    SELECT name, created_at, retention_seconds FROM pgmesh.topics
    WHERE name > ${after} ORDER BY name LIMIT ${limit}`;
  return rows.map(toTopic);
}

export async function deleteTopicRow(sql: Runner, name: string): Promise<boolean> {
  const rows = await sql`DELETE FROM pgmesh.topics WHERE name = ${name} RETURNING name`;
  return rows.length > 0;
}

export async function countSubscriptionsOf(sql: Runner, topic: string): Promise<number> {
  const rows = await sql`SELECT count(*)::int AS n FROM pgmesh.subscriptions WHERE topic = ${topic}`;
  return rows[0]?.n as number;
}

export async function upsertTopicSchema(
  sql: Runner,
  topic: string,
  schema: { fileDescriptorSet: Uint8Array; messageTypes: string[] },
): Promise<boolean> {
  const rows = await sql`
    INSERT INTO pgmesh.topic_schemas (topic, file_descriptor_set, message_types)
    SELECT name, ${Buffer.from(schema.fileDescriptorSet)}, ${schema.messageTypes}::text[]
    FROM pgmesh.topics WHERE name = ${topic}
    ON CONFLICT (topic) DO UPDATE
      SET file_descriptor_set = excluded.file_descriptor_set, message_types = excluded.message_types, updated_at = now()
    RETURNING topic`;
  return rows.length > 0;
}

export async function deleteTopicSchema(sql: Runner, topic: string): Promise<boolean> {
  const [row] = await sql`
    WITH gone AS (DELETE FROM pgmesh.topic_schemas WHERE topic = ${topic})
    SELECT EXISTS (SELECT 1 FROM pgmesh.topics WHERE name = ${topic}) AS topic_exists`;
  return Boolean(row?.topic_exists);
}

export async function selectTopicSchema(sql: Runner, topic: string): Promise<TopicSchema | undefined> {
  const rows = await sql`
    SELECT file_descriptor_set, message_types, updated_at FROM pgmesh.topic_schemas WHERE topic = ${topic}`;
  const row = rows[0];
  return row
    ? {
        fileDescriptorSet: row.file_descriptor_set as Uint8Array,
        messageTypes: row.message_types as string[],
        updatedAt: row.updated_at as Date,
      }
    : undefined;
}

/** The first seq retention has not deleted on the topic ("0": it never deleted any). */
export async function selectRetainedFrom(sql: Runner, topic: string): Promise<string> {
  const [row] = await sql`SELECT retained_from FROM pgmesh.topics WHERE name = ${topic}`;
  return String(row?.retained_from ?? "0");
}
