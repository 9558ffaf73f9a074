// Named queries on pgmesh.delivery_failures and pgmesh.dead_letters' write side.
import type { DeadLetterReason } from "../../delivery/model.ts";
import type { TransactionSql } from "../database.ts";

export async function recordFailures(
  tx: TransactionSql,
  subscription: string,
  items: { jobId: string; error: string }[],
): Promise<void> {
  if (items.length === 0) return;
  await tx`
    INSERT INTO pgmesh.delivery_failures (job_id, subscription, last_error)
    SELECT x.job_id, ${subscription}, x.error
    FROM unnest(${items.map((i) => i.jobId)}::uuid[], ${items.map((i) => i.error)}::text[]) AS x(job_id, error)
    ON CONFLICT (job_id) DO UPDATE SET last_failed_at = now(), last_error = excluded.last_error`;
}

export async function forgetFailures(tx: TransactionSql, jobIds: string[]): Promise<void> {
  if (jobIds.length === 0) return;
  await tx`DELETE FROM pgmesh.delivery_failures WHERE job_id = ANY(${jobIds}::uuid[])`;
}

export async function insertDeadLetters(
  tx: TransactionSql,
  subscription: string,
  items: {
    jobId: string;
    eventSeq: string;
    attempts: number;
    reason: DeadLetterReason;
    error: string;
    /** Set when the delivery's job stays behind to park this ordering key. */
    parkedKey?: string;
  }[],
): Promise<void> {
  if (items.length === 0) return;
  await tx`
    INSERT INTO pgmesh.dead_letters
      (subscription, event_seq, attempts, reason, last_error, first_failed_at, parked_job_id, ordering_key)
    SELECT ${subscription}, x.seq, x.attempts, x.reason, x.error, coalesce(f.first_failed_at, now()),
           CASE WHEN x.parked_key <> '' THEN x.job_id END, x.parked_key
    FROM unnest(${items.map((i) => i.jobId)}::uuid[], ${items.map((i) => i.eventSeq)}::bigint[],
                ${items.map((i) => i.attempts)}::int[], ${items.map((i) => i.reason)}::text[],
                ${items.map((i) => i.error)}::text[], ${items.map((i) => i.parkedKey ?? "")}::text[])
         AS x(job_id, seq, attempts, reason, error, parked_key)
    LEFT JOIN pgmesh.delivery_failures f ON f.job_id = x.job_id`;
}
