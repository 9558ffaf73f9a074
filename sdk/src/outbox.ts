// Transactional publish: when the application's database is the broker's Postgres, events can be
// published inside the application's own transaction, so they exist if and only if it commits.
// It calls pgmesh.outbox_publish(topic, event) (a broker migration); a broker relays the rows to
// their topics. Works with postgres.js (`sql.begin(tx => ...)`) and node-postgres (a client inside
// BEGIN), without depending on either.

import { Event } from "@pgmesh/proto/pgmesh/v1/event";
import { v7 as uuidv7 } from "uuid";
import { type EventType, type Publishable, typedEvent } from "./event-type.ts";

/** A postgres.js transaction (has `unsafe`) or a node-postgres client or pool client (has `query`). */
export type SqlTransaction =
  | { unsafe(query: string, parameters: never[]): PromiseLike<unknown> }
  | { query(text: string, values: unknown[]): PromiseLike<unknown> };

const STATEMENT = "SELECT pgmesh.outbox_publish($1, $2)";

/** Publishes events (wire envelopes) on a topic inside the caller's transaction; returns their ids. */
export async function outboxPublish(
  tx: SqlTransaction,
  topic: string,
  events: Partial<Event>[],
  defaults: { source?: string } = {},
): Promise<string[]> {
  const ids: string[] = [];
  for (const partial of events) {
    // The id is chosen here (time-ordered, uuid v7) so that the caller knows it before the relay runs.
    const event = Event.fromPartial({
      source: defaults.source ?? "pgmesh-sdk",
      ...partial,
      id: partial.id || uuidv7(),
    });
    const bytes = Buffer.from(Event.encode(event).finish());
    if ("unsafe" in tx) await tx.unsafe(STATEMENT, [topic, bytes] as never[]);
    else await tx.query(STATEMENT, [topic, bytes]);
    ids.push(event.id);
  }
  return ids;
}

/**
 * Publishes typed messages on their event type's topic inside the caller's transaction; each item is
 * `{ message, ...envelope }`.
 */
export function outboxPublishEvents<T>(
  tx: SqlTransaction,
  type: EventType<T>,
  items: readonly Publishable<T>[],
  defaults: { source?: string } = {},
): Promise<string[]> {
  return outboxPublish(
    tx,
    type.topic,
    items.map((item) => typedEvent(type, item)),
    defaults,
  );
}
