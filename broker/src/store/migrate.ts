// Applies broker/migrations/NNNN_*.sql once each, in order, under an advisory lock so that
// brokers starting together do not race. Forward-only: a migration is never edited once shipped.
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { type Sql, transaction } from "./database.ts";

const migrationsDir = fileURLToPath(new URL("../../migrations/", import.meta.url));
// Any constant works; it only has to be the same for every broker.
const MIGRATION_LOCK = 7_245_031_001;

/** Applies the migrations not applied yet; `through` stops after that version (for upgrade tests). */
export async function migrate(sql: Sql, { through = Number.POSITIVE_INFINITY } = {}): Promise<string[]> {
  const files = (await readdir(migrationsDir))
    .filter((f) => /^\d{4}_.+\.sql$/.test(f) && Number(f.slice(0, 4)) <= through)
    .sort();
  const applied: string[] = [];
  await transaction(sql, async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`CREATE SCHEMA IF NOT EXISTS pgmesh`;
    await tx`CREATE TABLE IF NOT EXISTS pgmesh.schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`;
    const done = new Set(
      (await tx`SELECT version FROM pgmesh.schema_migrations`).map((r) => r.version as number),
    );
    for (const file of files) {
      const version = Number(file.slice(0, 4));
      if (done.has(version)) continue;
      await tx.unsafe(await readFile(migrationsDir + file, "utf8"));
      await tx`INSERT INTO pgmesh.schema_migrations (version, name) VALUES (${version}, ${file})`;
      applied.push(file);
    }
  });
  return applied;
}
