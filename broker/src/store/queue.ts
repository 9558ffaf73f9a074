// The pg-boss adapter: one pg-boss queue per subscription holds that subscription's deliveries.
// pg-boss keeps its own pool (node-postgres) for fetch/complete/fail and its maintenance; inside a
// publish transaction it runs on our postgres.js transaction through its `db` option, so the
// deliveries commit or roll back with the events (see docs/architecture.md for the measurement).
import { PgBoss, type Db as PgBossDb } from "pg-boss";
import type { Lease } from "../delivery/model.ts";
import type { DeliveryQueue } from "../delivery/ports.ts";
import type { TransactionSql } from "./database.ts";

export interface JobQueueOptions {
  connectionString: string;
  /** How often pg-boss looks for lapsed leases (expired active jobs) and puts them back. */
  superviseIntervalSeconds: number;
  onError: (error: unknown) => void;
}

/** A delivery job's payload: the event's internal key, kept tiny on purpose. */
interface DeliveryData {
  e: string;
}

// Until subscriptions get a max-delivery-attempts policy, a delivery is retried without limit:
// pg-boss would otherwise mark it failed after its default 2 retries and it would vanish.
const UNBOUNDED_RETRIES = 2_000_000_000;

export class JobQueue implements DeliveryQueue {
  readonly boss: PgBoss;

  private constructor(boss: PgBoss) {
    this.boss = boss;
  }

  static async start(options: JobQueueOptions): Promise<JobQueue> {
    const boss = new PgBoss({
      connectionString: options.connectionString,
      schema: "pgboss",
      application_name: "pgmesh-pgboss",
      max: 6,
      schedule: false,
      supervise: true,
      superviseIntervalSeconds: options.superviseIntervalSeconds,
      // Lapsed leases are found by the per-queue monitor pass, which runs at most this often.
      monitorIntervalSeconds: options.superviseIntervalSeconds,
      registerInstance: false,
    });
    boss.on("error", options.onError);
    await boss.start();
    return new JobQueue(boss);
  }

  async stop(): Promise<void> {
    await this.boss.stop({ graceful: false, close: true });
  }

  async createQueue(queue: string, leaseSeconds: number): Promise<void> {
    await this.boss.createQueue(queue, {
      expireInSeconds: leaseSeconds,
      retryLimit: UNBOUNDED_RETRIES,
      retryDelay: 0,
      // Acked deliveries are not kept: the event itself stays in pgmesh.events.
      deleteAfterSeconds: 60,
      retentionSeconds: 60 * 60 * 24 * 365,
    });
  }

  async updateLease(queue: string, leaseSeconds: number): Promise<void> {
    await this.boss.updateQueue(queue, { expireInSeconds: leaseSeconds });
  }

  async deleteQueue(queue: string): Promise<void> {
    await this.boss.deleteQueue(queue);
  }

  /** Queues one delivery per event on `queue`, inside the caller's transaction. */
  async enqueue(tx: TransactionSql, queue: string, eventSeqs: string[]): Promise<void> {
    if (eventSeqs.length === 0) return;
    const db: PgBossDb = {
      executeSql: async (text, values) => ({ rows: await tx.unsafe(text, (values ?? []) as never[]) }),
    };
    await this.boss.insert(
      queue,
      eventSeqs.map((e) => ({ data: { e } satisfies DeliveryData })),
      { db },
    );
  }

  async lease(queue: string, limit: number): Promise<Lease[]> {
    const jobs = await this.boss.fetch<DeliveryData>(queue, { batchSize: limit });
    return jobs.map((job) => ({ jobId: job.id, retryCount: job.retryCount, eventSeq: String(job.data.e) }));
  }

  async complete(queue: string, leases: Lease[]): Promise<Set<string>> {
    if (leases.length === 0) return new Set();
    const result = await this.boss.complete(queue, leases.map(toAttempt));
    return settledIds(result);
  }

  async release(queue: string, leases: Lease[]): Promise<Set<string>> {
    if (leases.length === 0) return new Set();
    const result = await this.boss.fail(queue, leases.map(toAttempt));
    return settledIds(result);
  }
}

const toAttempt = (lease: Lease) => ({ id: lease.jobId, retryCount: lease.retryCount });

function settledIds(result: unknown): Set<string> {
  const settled = (result as { settled?: string[] }).settled;
  return new Set(settled ?? []);
}
