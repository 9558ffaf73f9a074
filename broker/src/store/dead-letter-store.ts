// Dead letters: listed with filters and paging, redriven (each at most once: the row is marked in
// the same transaction that queues the event again), purged.
import { randomUUID } from "node:crypto";
import type { DeadLetter, DeadLetterSelection, Page, Subscription } from "../delivery/model.ts";
import type { DeadLetterStore } from "../delivery/ports.ts";
import type { Sql } from "./database.ts";
import {
  claimForRedrive,
  deleteDeadLetters,
  recordRedriveJobs,
  selectDeadLetters,
} from "./queries/dead-letters.ts";
import type { JobQueue } from "./queue.ts";
import { WAKEUP_CHANNEL, wakeupPayload } from "./wakeups.ts";

export class PostgresDeadLetterStore implements DeadLetterStore {
  constructor(
    private readonly sql: Sql,
    private readonly queue: JobQueue,
  ) {}

  async list(selection: DeadLetterSelection, pageSize: number, after: string): Promise<Page<DeadLetter>> {
    const rows = await selectDeadLetters(this.sql, selection, after || "0", pageSize + 1);
    const items = rows.slice(0, pageSize);
    const last = items.at(-1);
    return { items, nextPageToken: rows.length > pageSize && last ? last.id : "" };
  }

  async redrive(subscription: Subscription, selection: DeadLetterSelection): Promise<number> {
    return this.sql.begin(async (tx) => {
      const claimed = await claimForRedrive(tx, selection);
      const jobs = claimed.map((c) => ({ ...c, jobId: randomUUID() }));
      await this.queue.enqueue(
        tx,
        subscription.queue,
        jobs.map((j) => ({ eventSeq: j.eventSeq, id: j.jobId })),
      );
      await recordRedriveJobs(
        tx,
        jobs.map((j) => ({ id: j.id, jobId: j.jobId })),
      );
      if (jobs.length > 0) {
        // Brokers with streams on the subscription deliver them now (this one included).
        await tx`SELECT pg_notify(${WAKEUP_CHANNEL}, ${wakeupPayload("redrive", [subscription.name])})`;
      }
      return jobs.length;
    });
  }

  purge(selection: DeadLetterSelection): Promise<number> {
    return deleteDeadLetters(this.sql, selection);
  }
}
