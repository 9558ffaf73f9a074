// Cross-broker signals over LISTEN/NOTIFY. A publish sends one notification per transaction naming
// its topics, and a redrive one naming the subscription's topic with "jobs"; every broker wakes its
// dispatchers of those topics (the publishing broker wakes its own directly and ignores its echo). Updating or deleting a
// subscription sends one too, so every broker takes the new policy into use or ends its streams,
// and so does a change to a topic's schema, so every broker drops the schema it compiled.
import type { WakeupBus } from "../delivery/ports.ts";
import type { Sql } from "./database.ts";

export const WAKEUP_CHANNEL = "pgmesh_wakeup";
export const SUBSCRIPTION_CHANNEL = "pgmesh_subscription_changed";
/** Sent by a trigger on pgmesh.topic_schemas (migration 0033) with the topic's name. */
export const TOPIC_SCHEMA_CHANNEL = "pgmesh_topic_schema_changed";

// Postgres caps a notification payload at 8000 bytes; past that we name no topic, which the
// listener reads as "wake them all".
const MAX_PAYLOAD = 7900;

/**
 * What a wake-up announces: new events after the topics' cursors ("events", a publish), or
 * deliveries queued as jobs ("jobs", a redrive).
 */
export type WakeupKind = "events" | "jobs";

export function wakeupPayload(senderId: string, topics: string[], kind: WakeupKind = "events"): string {
  const payload = `${senderId}|${kind === "jobs" ? "j" : "e"}|${topics.join(",")}`;
  return payload.length <= MAX_PAYLOAD ? payload : `${senderId}|${kind === "jobs" ? "j" : "e"}|*`;
}

export interface SubscriptionChange {
  name: string;
  queue: string;
  kind: "updated" | "deleted";
}

export const subscriptionChangePayload = (change: SubscriptionChange) => JSON.stringify(change);

export class PostgresWakeupBus implements WakeupBus {
  constructor(
    private readonly sql: Sql,
    private readonly brokerId: string,
  ) {}

  async listen(onWake: (topics: string[], kind: WakeupKind) => void): Promise<void> {
    await this.sql.listen(
      WAKEUP_CHANNEL,
      (payload) => {
        const [sender, kind, names = ""] = payload.split("|", 3);
        if (sender === this.brokerId) return;
        onWake(names === "*" ? ["*"] : names.split(","), kind === "j" ? "jobs" : "events");
      },
      // Called again after a reconnect: anything announced while we were away is picked up.
      () => onWake(["*"], "jobs"),
    );
  }

  /**
   * `onChange(topic)` after every change to a topic's schema, from any broker or from SQL;
   * `onChange()` when listening starts again after a lost connection (changes may have been missed).
   */
  async listenForTopicSchemaChanges(onChange: (topic?: string) => void): Promise<void> {
    await this.sql.listen(
      TOPIC_SCHEMA_CHANNEL,
      (topic) => onChange(topic),
      () => onChange(),
    );
  }

  async listenForSubscriptionChanges(onChange: (change: SubscriptionChange) => void): Promise<void> {
    await this.sql.listen(SUBSCRIPTION_CHANNEL, (payload) =>
      onChange(JSON.parse(payload) as SubscriptionChange),
    );
  }
}
