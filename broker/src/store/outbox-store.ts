// The outbox relay's storage side: takes committed outbox rows in order and publishes them through
// the normal publish path, deleting them in the same transaction, so each is published exactly
// once. One broker relays at a time (an advisory lock), which keeps the outbox's order.
import { MeshError } from "../delivery/errors.ts";
import type { EventEnvelope } from "../delivery/model.ts";
import type { OutboxStore } from "../delivery/ports.ts";
import { type Sql, transaction } from "./database.ts";
import type { PostgresEventStore } from "./event-store.ts";
import * as topics from "./queries/topics.ts";

export const OUTBOX_CHANNEL = "pgmesh_outbox";
const RELAY_LOCK = 7_245_031_002;

export class PostgresOutboxStore implements OutboxStore {
  constructor(
    private readonly sql: Sql,
    private readonly events: PostgresEventStore,
  ) {}

  async relay(
    limit: number,
    prepare: (bytes: Uint8Array, topic: string) => Promise<EventEnvelope>,
  ): Promise<{ taken: number; failed: number; topics: string[] }> {
    return transaction(this.sql, async (tx) => {
      const [lock] = await tx`SELECT pg_try_advisory_xact_lock(${RELAY_LOCK}) AS taken`;
      if (!lock?.taken) return { taken: 0, failed: 0, topics: [] };
      const rows = (
        await tx`
          DELETE FROM pgmesh.outbox WHERE seq IN (SELECT seq FROM pgmesh.outbox ORDER BY seq LIMIT ${limit})
          RETURNING seq, topic, event`
      ).sort((a, b) => Number(a.seq) - Number(b.seq));
      let failed = 0;
      // Consecutive rows of one topic go as one request; the outbox's order is kept within a topic.
      const requests: { topic: string; batch: EventEnvelope[] }[] = [];
      const bad: { seq: string; topic: string; event: Uint8Array; error: string }[] = [];
      const exists = new Map<string, boolean>();
      let start = 0;
      while (start < rows.length) {
        const topic = rows[start]?.topic as string;
        let end = start;
        while (end < rows.length && rows[end]?.topic === topic) end++;
        const batch = rows.slice(start, end);
        start = end;
        const good: EventEnvelope[] = [];
        if (!exists.has(topic)) exists.set(topic, Boolean(await topics.selectTopic(tx, topic)));
        for (const row of batch) {
          try {
            if (!exists.get(topic)) throw new MeshError("not_found", `topic ${topic} does not exist`);
            good.push(await prepare(row.event as Uint8Array, topic));
          } catch (error) {
            // Anything but a refusal (the schema could not be loaded, say) is retried later.
            if (!(error instanceof MeshError)) throw error;
            bad.push({ seq: String(row.seq), topic, event: row.event as Uint8Array, error: error.message });
          }
        }
        if (good.length > 0) requests.push({ topic, batch: good });
      }
      for (const b of bad) {
        await tx`INSERT INTO pgmesh.outbox_failures (seq, topic, event, error)
          VALUES (${b.seq}, ${b.topic}, ${Buffer.from(b.event)}, ${b.error})`;
      }
      failed += bad.length;
      // Every topic in one publish statement, the transaction's last before its commit: it locks
      // the topics in name order (as every publish does, so no deadlock with a broker's group) and
      // holds them for no longer than the commit takes.
      const woken = await this.events.publishIn(tx, requests);
      return { taken: rows.length, failed, topics: woken };
    });
  }

  async listen(onWake: () => void): Promise<void> {
    await this.sql.listen(OUTBOX_CHANNEL, () => onWake(), onWake);
  }
}
