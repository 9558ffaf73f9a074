// Dead letters: listed with filters and paging, redriven (each at most once: the row is marked in
// the same transaction that queues the event again), purged.
import { randomUUID } from "node:crypto";
import type { DeadLetter, DeadLetterSelection, Page, Subscription } from "../delivery/model.ts";
import type { DeadLetterStore } from "../delivery/ports.ts";
import { type Sql, transaction } from "./database.ts";
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
    return transaction(this.sql, async (tx) => {
      const claimed = await claimForRedrive(tx, selection);
      // A dead letter that still parks its key goes back in place, at the head of the key, so the
      // key's order holds; any other is queued anew.
      const inPlace = new Set(
        await this.queue.unpark(
          tx,
          subscription.queue,
          claimed.flatMap((c) => (c.parkedJobId ? [c.parkedJobId] : [])),
          subscription.ackedRetentionSeconds,
        ),
      );
      const jobs = claimed.map((c) => ({
        ...c,
        jobId: c.parkedJobId && inPlace.has(c.parkedJobId) ? c.parkedJobId : randomUUID(),
      }));
      const fresh = jobs.filter((j) => !(j.parkedJobId && inPlace.has(j.parkedJobId)));
      await this.queue.enqueue(
        tx,
        subscription.queue,
        fresh.map((j) => ({
          eventSeq: j.eventSeq,
          id: j.jobId,
          orderingKey: subscription.ordering ? j.orderingKey || `~${j.eventSeq}` : undefined,
        })),
      );
      await recordRedriveJobs(
        tx,
        jobs.map((j) => ({ id: j.id, jobId: j.jobId })),
      );
      if (jobs.length > 0) {
        // Brokers with streams on the subscription deliver them now (this one included).
        await tx`SELECT pg_notify(${WAKEUP_CHANNEL}, ${wakeupPayload("redrive", [subscription.topic], "jobs")})`;
      }
      return jobs.length;
    });
  }

  purge(subscription: Subscription, selection: DeadLetterSelection): Promise<number> {
    return transaction(this.sql, async (tx) => {
      const { count, parkedJobIds } = await deleteDeadLetters(tx, selection);
      // A purged event is gone for good: nothing is left for its key to wait for.
      if (parkedJobIds.length > 0)
        await this.queue.releaseParked(tx, subscription.queue, { jobIds: parkedJobIds });
      return count;
    });
  }
}
