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
