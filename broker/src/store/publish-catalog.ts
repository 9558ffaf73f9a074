// The topics and subscriptions publishes route by, cached per topic. Subscriptions change rarely
// and publishes are the hot path, so the broker does not read them in every publish: the publish
// statement (queries/publish.ts) checks the cached list against the locked rows and fails with
// STALE_CATALOG when they differ; the caller then forgets the topics and publishes again.
import type { Subscription } from "../delivery/model.ts";
import type { Sql, TransactionSql } from "./database.ts";
import { STALE_CATALOG } from "./queries/publish.ts";
import { selectPublishCatalog } from "./queries/subscriptions.ts";

export class PublishCatalog {
  private readonly byTopic = new Map<string, Subscription[]>();

  constructor(private readonly sql: Sql) {}

  /**
   * The subscriptions of each topic that exists. Topics not cached (or not existing: a topic may
   * be created at any time) are read, in `runner` when given (a caller's transaction).
   */
  async of(topics: string[], runner: Sql | TransactionSql = this.sql): Promise<Map<string, Subscription[]>> {
    const unknown = topics.filter((t) => !this.byTopic.has(t));
    if (unknown.length > 0) {
      const read = await selectPublishCatalog(runner, unknown);
      for (const [topic, subs] of read) this.byTopic.set(topic, subs);
    }
    const found = new Map<string, Subscription[]>();
    for (const topic of topics) {
      const subs = this.byTopic.get(topic);
      if (subs) found.set(topic, subs);
    }
    return found;
  }

  forget(topics: string[]): void {
    for (const topic of topics) this.byTopic.delete(topic);
  }

  /** A subscription of `topic` was deleted on some broker: read the topic afresh next time. */
  forgetSubscription(queue: string): void {
    for (const [topic, subs] of this.byTopic)
      if (subs.some((s) => s.queue === queue)) this.byTopic.delete(topic);
  }
}

/** Whether a publish failed only because the cached list was stale (it stored nothing). */
export const isStaleCatalog = (error: unknown) =>
  (error as { code?: string } | undefined)?.code === STALE_CATALOG;
