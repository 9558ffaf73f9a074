// The postgres.js connection pool for pgmesh's own queries. pg-boss keeps its own pool (see queue.ts).
import postgres from "postgres";
import { isConnectionLost } from "./database-errors.ts";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

/** How long a connection attempt and a statement may take before they fail (and the call answers UNAVAILABLE). */
export interface DatabaseTimeouts {
  connectTimeoutMs: number;
  statementTimeoutMs: number;
}

export const DEFAULT_TIMEOUTS: DatabaseTimeouts = { connectTimeoutMs: 5_000, statementTimeoutMs: 30_000 };

export function connectDatabase(
  url: string,
  options: { max?: number; timeouts?: DatabaseTimeouts } = {},
): Sql {
  const timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  return postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    // postgres.js takes seconds; an unreachable server fails the query instead of queueing it for 30 s.
    connect_timeout: timeouts.connectTimeoutMs / 1000,
    // Seconds before a closed connection connects again. postgres.js's default grows with every
    // failed attempt across the pool, to 20 s: after an outage of a few seconds the broker sat
    // idle for up to 20 s on a database that was back. The gate (database-errors.ts) already
    // keeps calls off a database that is down, so a short wait here costs nothing.
    backoff: reconnectDelaySeconds,
    connection: {
      application_name: "pgmesh-broker",
      statement_timeout: timeouts.statementTimeoutMs,
      // A transaction left open by a vanished client must not hold locks for ever.
      idle_in_transaction_session_timeout: Math.max(timeouts.statementTimeoutMs, 60_000),
    },
  });
}

/** 50 ms after the first failed attempt, doubling to 1 s, with jitter so connections spread out. */
export function reconnectDelaySeconds(failures: number): number {
  return (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** failures, 1);
}

/** The same bounds for pg-boss's node-postgres pool. */
export function poolTimeouts(timeouts: DatabaseTimeouts) {
  return {
    connectionTimeoutMillis: timeouts.connectTimeoutMs,
    statement_timeout: timeouts.statementTimeoutMs,
    // Client side too: a server that stops answering (a partition) never sends the cancel.
    query_timeout: timeouts.statementTimeoutMs + timeouts.connectTimeoutMs,
  };
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
  // A connection that died under the transaction is already back in postgres.js's closed queue;
  // releasing it as well would put a dead connection in the open queue, where later queries wait
  // on it for ever.
  let alive = true;
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
      // On a lost connection the server has rolled back already, and postgres.js must not be
      // asked to write to the closed socket (it throws outside the query's promise).
      if (!isConnectionLost(error)) {
        await reserved`ROLLBACK`.catch(() => {
          alive = false;
        });
      }
      throw error;
    }
    await reserved`COMMIT`;
    return result;
  } catch (error) {
    if (isConnectionLost(error)) alive = false;
    throw error;
  } finally {
    if (alive) reserved.release();
  }
}

/**
 * Runs `fn` on a connection of its own, for session state (an advisory lock, VACUUM outside a
 * transaction). A connection that died is not given back: postgres.js would hand it out again and
 * every later query on it would wait for ever.
 */
async function onSession<T>(sql: Sql, fn: (session: postgres.ReservedSql) => Promise<T>): Promise<T> {
  const session = await sql.reserve();
  let alive = true;
  try {
    return await fn(session);
  } catch (error) {
    if (isConnectionLost(error)) alive = false;
    throw error;
  } finally {
    if (alive) session.release();
  }
}

/**
 * Runs `work` holding a session advisory lock on a connection of its own, or returns undefined
 * (without running it) while someone else holds the lock: one broker of the mesh at a time. The
 * server lets go of the lock when the connection dies with its broker.
 */
export function withSessionLock<T>(
  sql: Sql,
  key: number,
  work: (session: postgres.ReservedSql) => Promise<T>,
): Promise<T | undefined> {
  return onSession(sql, async (session) => {
    const [row] = await session`SELECT pg_try_advisory_lock(${key}) AS locked`;
    if (!row?.locked) return undefined;
    try {
      return await work(session);
    } finally {
      await session`SELECT pg_advisory_unlock(${key})`;
    }
  });
}
