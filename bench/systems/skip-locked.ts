// The queue everyone can write on Postgres, as the floor under any Postgres-based queue: a table,
// batches inserted in one statement, and a consumer that in one transaction selects up to n rows
// FOR UPDATE SKIP LOCKED, hands them over, deletes them and commits; it polls every 10 ms when the
// table is empty. A fan-out inserts one row per subscription. Producer and consumers have a pool of
// their own, as separate processes would.
import postgres from "postgres";
import { FetchTimer } from "../fetch-tally.ts";
import { decodeStamp, encodeStamp } from "../payload.ts";
import { createDatabase } from "../postgres-admin.ts";
import { type Channel, type Consumer, pollUntil, type System } from "./system.ts";

const IDLE_POLL_MS = 10;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function skipLockedSystem(): System {
  let db: { name: string; url: string } | undefined;
  let sql: postgres.Sql | undefined;
  let consumerSql: postgres.Sql | undefined;
  return {
    key: "skiplocked",
    label: "raw SKIP LOCKED",
    async open() {
      db = await createDatabase("skiplocked");
      sql = postgres(db.url, { max: 10, onnotice: () => {} });
      consumerSql = postgres(db.url, { max: 10, onnotice: () => {} });
      await sql`CREATE SCHEMA queue`;
    },
    info: () => ({
      table: "queue.<channel>(id bigserial primary key, sub int, payload bytea), index (sub, id)",
      consumer: `BEGIN; SELECT ... ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED; DELETE; COMMIT; ${IDLE_POLL_MS} ms idle poll`,
    }),
    database: () => ({ ...(db as { name: string; url: string }), schemas: ["queue"] }),
    async channel(name, subscriptions) {
      const s = sql as postgres.Sql;
      const table = `queue.${name.replace(/\./g, "_")}`;
      await s.unsafe(
        `CREATE TABLE ${table} (id bigserial PRIMARY KEY, sub int NOT NULL, payload bytea NOT NULL);
         CREATE INDEX ON ${table} (sub, id)`,
      );
      const rows = (payload: Buffer) => Array.from({ length: subscriptions }, (_, sub) => ({ sub, payload }));
      const fetchTimer = new FetchTimer();
      const channel: Channel = {
        fetches: async () => fetchTimer.snapshot(),
        async publishBatch(stamps) {
          const all = stamps.flatMap((stamp) => rows(encodeStamp(stamp)));
          await s`INSERT INTO ${s(table)} ${s(all, "sub", "payload")}`;
        },
        async publishOne(stamp) {
          await s`INSERT INTO ${s(table)} ${s(rows(encodeStamp(stamp)), "sub", "payload")}`;
        },
        async consume(subscription, window, receive): Promise<Consumer> {
          let stopping = false;
          const take = () =>
            (consumerSql as postgres.Sql).begin(async (tx) => {
              const batch = await fetchTimer.time(() =>
                tx.unsafe<{ id: string; payload: Buffer }[]>(
                  `SELECT id, payload FROM ${table} WHERE sub = $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`,
                  [subscription, window],
                ),
              );
              if (batch.length === 0) return 0;
              for (const row of batch) receive(decodeStamp(row.payload));
              await tx.unsafe(`DELETE FROM ${table} WHERE id = ANY($1::bigint[])`, [batch.map((r) => r.id)]);
              return batch.length;
            });
          const loop = (async () => {
            while (!stopping) if ((await take()) === 0) await sleep(IDLE_POLL_MS);
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
        async drained(timeoutMs) {
          await pollUntil(
            async () =>
              (await s.unsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM ${table}`))[0]?.n ?? 0,
            (left) => left === 0,
            timeoutMs,
            (left) => `${left} rows left`,
          );
        },
        async delete() {
          await s.unsafe(`DROP TABLE ${table}`);
        },
      };
      return channel;
    },
    async close() {
      await sql?.end({ timeout: 5 });
      await consumerSql?.end({ timeout: 5 });
    },
  };
}
