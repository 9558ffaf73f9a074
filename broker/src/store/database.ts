// The postgres.js connection pool for pgmesh's own queries. pg-boss keeps its own pool (see queue.ts).
import postgres from "postgres";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

export function connectDatabase(url: string, options: { max?: number } = {}): Sql {
  return postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    connection: { application_name: "pgmesh-broker" },
  });
}

/**
 * Runs `fn` in a transaction on a connection reserved first. postgres.js's own sql.begin() can
 * send BEGIN on a connection it never reserved when BEGIN fills that connection's pipeline
 * (porsager/postgres#823, #1189): the transaction then fails with UNSAFE_TRANSACTION, or its
 * connection goes back to the pool while still inside it. A reserved connection is idle and ours
 * alone before BEGIN is sent. Every transaction of the broker goes through here.
 */
export async function transaction<T>(sql: Sql, fn: (tx: TransactionSql) => Promise<T> | T): Promise<T> {
  const reserved = await sql.reserve();
  try {
    // Sent at once, not awaited: the transaction's first statements pipeline behind it.
    const begin = reserved`BEGIN`.execute();
    begin.catch(() => {});
    let result: T;
    try {
      // The reserved handle runs every statement on that one connection, which is all a
      // TransactionSql is to our code (we use no savepoints).
      result = await fn(reserved as unknown as TransactionSql);
      await begin;
    } catch (error) {
      await reserved`ROLLBACK`.catch(() => {});
      throw error;
    }
    await reserved`COMMIT`;
    return result;
  } finally {
    reserved.release();
  }
}
