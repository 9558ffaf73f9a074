// The broker's transactions must hold under a busy pool. postgres.js's sql.begin() can send BEGIN
// on a connection it never reserved when BEGIN is the query that fills a connection's pipeline
// (porsager/postgres#823, #1189): the transaction fails with UNSAFE_TRANSACTION, or worse, its
// connection goes back to the pool mid-transaction. transaction() reserves first, then begins.
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { transaction } from "../../src/store/database.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

describe("transactions on a busy pool", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("commits every transaction while plain queries pipeline on the same connections", async () => {
    // A short pipeline makes the boundary that loses the reservation easy to reach.
    // max_pipeline is a real option that postgres.js's types leave out.
    const sql = postgres(db.url, { max: 3, max_pipeline: 2, onnotice: () => {} } as postgres.Options<
      Record<string, never>
    >);
    try {
      await sql`CREATE TABLE t (n int)`;
      for (let round = 0; round < 10; round++) {
        // Plain queries queued on every connection, then the transactions: a BEGIN lands at a
        // pipeline's boundary (with sql.begin, about 3 of every 5 failed here).
        const plain = Array.from({ length: 6 }, () => sql`SELECT 1`.then((rows) => rows));
        const txs = Array.from({ length: 5 }, (_, i) =>
          transaction(sql, async (tx) => {
            await tx`INSERT INTO t VALUES (${round * 10 + i})`;
            const [row] = await tx`SELECT count(*)::int AS n FROM t WHERE n = ${round * 10 + i}`;
            return row?.n as number;
          }),
        );
        const busy = [1, 2, 3].map(() => sql`SELECT pg_sleep(0.01)`.then((rows) => rows));
        const results = await Promise.all([...plain, ...busy, ...txs]);
        expect(results.slice(-5)).toEqual([1, 1, 1, 1, 1]);
      }
      const [{ n }] = (await sql`SELECT count(*)::int AS n FROM t`) as unknown as [{ n: number }];
      expect(n).toBe(50);
      // Nothing was left inside a transaction.
      const open = await sql`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'idle in transaction'`;
      expect(open[0]?.n).toBe(0);
    } finally {
      await sql.end();
    }
  });

  it("rolls back when the work throws, and the connection is usable afterwards", async () => {
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await sql`CREATE TABLE r (n int)`;
      await expect(
        transaction(sql, async (tx) => {
          await tx`INSERT INTO r VALUES (1)`;
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      await expect(
        transaction(sql, async (tx) => {
          await tx`INSERT INTO r VALUES (2)`;
          await tx`SELECT 1/0`;
        }),
      ).rejects.toThrow(/division by zero/);
      const rows = await sql`SELECT n FROM r`;
      expect(rows).toEqual([]);
      await transaction(sql, (tx) => tx`INSERT INTO r VALUES (3)`);
      expect((await sql`SELECT n FROM r`).map((r) => r.n)).toEqual([3]);
    } finally {
      await sql.end();
    }
  });
});
