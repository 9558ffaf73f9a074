// Keeps pgmesh's tables bounded and their planner statistics current, whatever the server's
// autovacuum does (it may be off, or behind a burst): one broker of the mesh at a time (a session
// advisory lock), every few seconds, it
//  - ANALYZEs a hot table once a tenth of it changed, and VACUUMs it once a fifth of it is dead
//    rows (autovacuum's own rule, with larger floors), never truncating (see keepStatistics).
//    Without statistics pg-boss's fetch on a 1,000,000-job backlog sorted every pending row on disk (551 ms a fetch, 11.7 ms after ANALYZE);
//  - forgets the idempotency keys past the window, in batches until none is left, so the sweep
//    keeps up with any publish rate;
//  - deletes the events past their topic's retention that no delivery and no dead letter needs;
//  - deletes audit log rows past the audit retention (an audit log kept forever is personal data
//    kept forever, and a table that only grows).
// Acked deliveries are pg-boss's to delete (its maintenance interval; see queue.ts).
import { waitAtMost } from "../delivery/wait-at-most.ts";
import { type Sql, withSessionLock } from "./database.ts";
import {
  deleteAuditOlderThan,
  deleteEventKeysOlderThan,
  deleteExpiredEvents,
  selectOldestNeededEvent,
  selectTableActivity,
  selectTopicsPastRetention,
  type TableActivity,
} from "./queries/upkeep.ts";

// Any constant works; it only has to be the same for every broker.
const UPKEEP_LOCK = 7_245_031_002;
const DELETE_BATCH = 10_000;
const LOCK_NOT_AVAILABLE = "55P03";
/** How long the audit log is kept unless configured (PGMESH_AUDIT_RETENTION_DAYS). */
export const DEFAULT_AUDIT_RETENTION_DAYS = 90;
/** A pass stops deleting after this long and goes on at the next; statistics come first. */
const DELETE_BUDGET_MS = 2_000;

export interface UpkeepOptions {
  dedupWindowSeconds: number;
  /** Audit log rows older than this are deleted (PGMESH_AUDIT_RETENTION_DAYS; 90 when left out). */
  auditRetentionDays?: number;
  onError: (error: unknown) => void;
  /** Told what a pass did and how long it took, when it did anything. */
  onPass?: (report: UpkeepReport, ms: number) => void;
}

export interface UpkeepReport {
  /** False when another broker held the upkeep lock: this one did nothing. */
  ran: boolean;
  analyzed: string[];
  vacuumed: string[];
  keysForgotten: number;
  eventsDeleted: number;
  auditRowsDeleted: number;
}

/** autovacuum's rule (threshold + scale factor × live rows), with floors sized for queue tables. */
export const needsAnalyze = (t: TableActivity) => t.modifiedSinceAnalyze >= 1_000 + 0.1 * t.live;
export const needsVacuum = (t: TableActivity) => t.dead >= 5_000 + 0.2 * t.live;

export class TableUpkeep {
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<UpkeepReport> | undefined;

  constructor(
    private readonly sql: Sql,
    private readonly options: UpkeepOptions,
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      if (!this.pass) void this.runOnce().catch(this.options.onError);
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass in progress, but no longer than `timeoutMs`. */
  async stop(timeoutMs = 5_000): Promise<void> {
    clearInterval(this.timer);
    await waitAtMost(this.pass, timeoutMs);
  }

  /** One pass, now (also what the timer runs). */
  runOnce(): Promise<UpkeepReport> {
    const started = performance.now();
    this.pass ??= this.lockedPass()
      .then((report) => {
        const busy =
          report.analyzed.length +
          report.vacuumed.length +
          report.keysForgotten +
          report.eventsDeleted +
          report.auditRowsDeleted;
        if (busy > 0) this.options.onPass?.(report, performance.now() - started);
        return report;
      })
      .finally(() => {
        this.pass = undefined;
      });
    return this.pass;
  }

  private async lockedPass(): Promise<UpkeepReport> {
    const report: UpkeepReport = {
      ran: false,
      analyzed: [],
      vacuumed: [],
      keysForgotten: 0,
      eventsDeleted: 0,
      auditRowsDeleted: 0,
    };
    // A session lock on a connection of our own: VACUUM cannot run inside a transaction.
    await withSessionLock(this.sql, UPKEEP_LOCK, async (session) => {
      report.ran = true;
      // The idempotency window is a promise to publishers: its sweep goes first.
      const deadline = Date.now() + DELETE_BUDGET_MS;
      await this.forgetKeys(session, report, deadline);
      await this.expireEvents(session, report, deadline);
      await this.expireAudit(session, report, deadline);
      await this.keepStatistics(session, report);
    });
    // `ran` stays false when another broker held the lock (the work never started).
    return report;
  }

  private async keepStatistics(sql: Sql, report: UpkeepReport): Promise<void> {
    // Never queue behind DDL (a subscription being created or dropped): that table waits for the
    // next pass.
    await sql`SET lock_timeout = '1s'`;
    try {
      for (const table of await selectTableActivity(sql)) {
        try {
          if (needsVacuum(table)) {
            // Also analyzes. Never truncates: giving the empty trailing pages back takes ACCESS
            // EXCLUSIVE on the table, and a queue's acked rows are deleted from its end, so every
            // fetch, publish and ack of the mesh would wait behind it. The pages are reused by the
            // next inserts instead. The table name comes from the
            // catalog, quoted by quote_ident.
            await sql.unsafe(`VACUUM (ANALYZE, TRUNCATE false) ${table.table}`);
            report.vacuumed.push(table.table);
          } else if (needsAnalyze(table)) {
            await sql.unsafe(`ANALYZE ${table.table}`);
            report.analyzed.push(table.table);
          }
        } catch (error) {
          if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw error;
        }
      }
    } finally {
      await sql`RESET lock_timeout`;
    }
  }

  private async forgetKeys(sql: Sql, report: UpkeepReport, deadline: number): Promise<void> {
    for (;;) {
      const deleted = await deleteEventKeysOlderThan(sql, this.options.dedupWindowSeconds, DELETE_BATCH);
      report.keysForgotten += deleted;
      if (deleted < DELETE_BATCH || Date.now() > deadline) return;
    }
  }

  private async expireAudit(sql: Sql, report: UpkeepReport, deadline: number): Promise<void> {
    for (;;) {
      const deleted = await deleteAuditOlderThan(
        sql,
        this.options.auditRetentionDays ?? DEFAULT_AUDIT_RETENTION_DAYS,
        DELETE_BATCH,
      );
      report.auditRowsDeleted += deleted;
      if (deleted < DELETE_BATCH || Date.now() > deadline) return;
    }
  }

  private async expireEvents(sql: Sql, report: UpkeepReport, deadline: number): Promise<void> {
    for (const { topic, cutoff } of await selectTopicsPastRetention(sql)) {
      const oldestNeeded = await selectOldestNeededEvent(sql, topic);
      for (;;) {
        if (Date.now() > deadline) return;
        const deleted = await deleteExpiredEvents(sql, topic, cutoff, oldestNeeded, DELETE_BATCH);
        report.eventsDeleted += deleted;
        if (deleted < DELETE_BATCH) break;
      }
    }
  }
}
