// Raw pg-boss, used as its docs describe and with pgmesh's batch sizes: insert() a batch, a consumer
// that fetch()es up to 500 and complete()s them with one call, polling every 10 ms when the queue is
// empty. A fan-out inserts the batch into each subscription's queue (as pg-boss's own publish() sends
// to each subscribed queue). Each queue's job table is analyzed once with a first batch in it: fetch
// plans depend on statistics, and this server's autovacuum may be off (see bench/README.md).
// Producer and consumers have a PgBoss (and a pool) each, as separate processes would: a shared pool
// would queue the consumer's fetches behind the producers' inserts.
import { PgBoss } from "pg-boss";
import postgres from "postgres";
import { FetchTimer } from "../fetch-tally.ts";
import { packageVersion } from "../package-version.ts";
import { fromJsonStamp, type JsonStamp, jsonStamp } from "../payload.ts";
import { createDatabase } from "../postgres-admin.ts";
import { type Channel, type Consumer, pollUntil, type System } from "./system.ts";

export const PGBOSS_FETCH = 500;
const IDLE_POLL_MS = 10;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function pgbossSystem(): System {
  let db: { name: string; url: string } | undefined;
  let boss: PgBoss | undefined;
  let consumerBoss: PgBoss | undefined;
  let sql: postgres.Sql | undefined;
  return {
    key: "pgboss",
    label: "raw pg-boss",
    async open() {
      db = await createDatabase("pgboss");
      const start = async () => {
        const instance = new PgBoss({
          connectionString: (db as { url: string }).url,
          schema: "pgboss",
          max: 10,
          schedule: false,
          supervise: false,
          registerInstance: false,
        });
        instance.on("error", (error: unknown) => console.error("pg-boss:", error));
        return instance.start();
      };
      boss = await start();
      consumerBoss = await start();
      sql = postgres(db.url, { max: 1, onnotice: () => {} });
    },
    info: () => ({
      pgBoss: packageVersion("pg-boss"),
      use: `insert() batches, fetch(batchSize ${PGBOSS_FETCH}) + complete(), ${IDLE_POLL_MS} ms idle poll; producer and consumers with a pool of 10 each`,
    }),
    database: () => ({ ...(db as { name: string; url: string }), schemas: ["pgboss"] }),
    async channel(name, subscriptions) {
      const b = boss as PgBoss;
      const s = sql as postgres.Sql;
      const queues = Array.from({ length: subscriptions }, (_, i) => `${name.replace(/\./g, "_")}_s${i}`);
      for (const queue of queues) {
        await b.createQueue(queue, { retryLimit: 1 });
        await b.insert(
          queue,
          Array.from({ length: 100 }, (_, i) => ({ data: jsonStamp({ round: 0, index: i, sentAt: 0 }) })),
        );
      }
      await s.unsafe("ANALYZE pgboss.job");
      for (const queue of queues) {
        for (;;) {
          const jobs = await b.fetch(queue, { batchSize: 100 });
          if (jobs.length === 0) break;
          await b.complete(
            queue,
            jobs.map((j) => ({ id: j.id, retryCount: j.retryCount })),
          );
        }
      }
      const pending = async () => {
        const [row] = await s<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pgboss.job WHERE name = ANY(${queues}) AND state < 'completed'`;
        return row?.n ?? 0;
      };
      const fetchTimer = new FetchTimer();
      const channel: Channel = {
        async publishBatch(stamps) {
          const jobs = stamps.map((stamp) => ({ data: jsonStamp(stamp) }));
          await Promise.all(queues.map((queue) => b.insert(queue, jobs)));
        },
        async publishOne(stamp) {
          await Promise.all(queues.map((queue) => b.send(queue, jsonStamp(stamp))));
        },
        async consume(subscription, window, receive): Promise<Consumer> {
          const queue = queues[subscription] as string;
          const c = consumerBoss as PgBoss;
          let stopping = false;
          const loop = (async () => {
            while (!stopping) {
              const jobs = await fetchTimer.time(() =>
                c.fetch<JsonStamp>(queue, { batchSize: Math.min(window, PGBOSS_FETCH) }),
              );
              if (jobs.length === 0) {
                await sleep(IDLE_POLL_MS);
                continue;
              }
              for (const job of jobs) receive(fromJsonStamp(job.data));
              const result = await c.complete(
                queue,
                jobs.map((j) => ({ id: j.id, retryCount: j.retryCount })),
              );
              const affected = (result as unknown as { affected: number }).affected;
              if (affected !== jobs.length)
                throw new Error(`pg-boss: complete affected ${affected} of ${jobs.length}`);
            }
          })();
          let failure: unknown;
          loop.catch((error: unknown) => {
            failure = error;
          });
          return {
            async stop() {
              stopping = true;
              await loop.catch(() => {});
              if (failure) throw failure;
            },
          };
        },
        fetches: async () => fetchTimer.snapshot(),
        async drained(timeoutMs) {
          await pollUntil(
            pending,
            (left) => left === 0,
            timeoutMs,
            (left) => `${left} jobs not completed`,
          );
        },
        async delete() {
          for (const queue of queues) await b.deleteQueue(queue);
        },
      };
      return channel;
    },
    async close() {
      await boss?.stop({ graceful: false, close: true });
      await consumerBoss?.stop({ graceful: false, close: true });
      await sql?.end({ timeout: 5 });
    },
  };
}
