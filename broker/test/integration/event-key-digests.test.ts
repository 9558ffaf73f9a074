// Migration 0031 turns the idempotency keys into digests of (topic, source, id). A database
// upgraded from 0030 keeps every key it had: an event published before the upgrade is still a
// duplicate after it, within the window it had left.
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventKeyDigest } from "../../src/store/event-key-digest.ts";
import { migrate } from "../../src/store/migrate.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let db: TestDatabase;
let sql: postgres.Sql;
beforeAll(async () => {
  db = await createTestDatabase();
  sql = postgres(db.url, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await sql.end();
  await db.drop();
});

describe("idempotency keys as digests (migration 0031)", () => {
  it("carries every key of a database at 0030 over, with its publish time", async () => {
    await migrate(sql, { through: 30 });
    await sql`
      INSERT INTO pgmesh.event_keys (topic, source, id, published_at)
      VALUES ('orders', 'shop', 'o-1', now() - interval '1 hour'), ('orders', 'shop', 'o-2', now())`;

    expect(await migrate(sql, { through: 31 })).toEqual(["0031_event_key_digests.sql"]);

    const keys = await sql`
      SELECT k.digest = pgmesh.event_key_digest('orders', 'shop', 'o-1') AS first,
             k.published_at < now() - interval '59 minutes' AS kept_its_time
      FROM pgmesh.event_keys k ORDER BY k.published_at`;
    expect(keys).toEqual([
      { first: true, kept_its_time: true },
      { first: false, kept_its_time: false },
    ]);
    // The publish statement claims a key by the same digest: the old key blocks a repeat.
    const [claim] = await sql`
      INSERT INTO pgmesh.event_keys (digest) VALUES (pgmesh.event_key_digest('orders', 'shop', 'o-2'))
      ON CONFLICT DO NOTHING RETURNING digest`;
    expect(claim).toBeUndefined();
  });

  it("gives different keys different digests, however their parts could be run together", async () => {
    await migrate(sql);
    const [row] = await sql`
      SELECT count(DISTINCT pgmesh.event_key_digest(t, s, i))::int AS distinct_digests
      FROM (VALUES ('a', 'bc', 'd'), ('a', 'b', 'cd'), ('ab', 'c', 'd'), ('a', 'b:c', 'd'),
                   ('a', '1:b', 'cd'), ('a', 'é', 'x'), ('a', 'e', 'x')) AS k(t, s, i)`;
    expect(row?.distinct_digests).toBe(7);
  });

  it("is computed by the broker exactly as by pgmesh.event_key_digest, for any text", async () => {
    await migrate(sql);
    const keys: [string, string, string][] = [
      ["orders", "shop", "o-1"],
      ["a", "bc", "d"],
      ["a", "b:c", "d"],
      ["a", "1:b", "cd"],
      ["tópico", "café", "ü"],
      // Astral characters: one code point, two UTF-16 units (Postgres counts the former).
      ["emoji.🎉", "src😀", "id-🚀"],
      ["e\u0301", "combining", "x"],
      ["t", "s", ""],
      ["long", "s".repeat(300), "i".repeat(256)],
    ];
    const rows = await sql`
      SELECT pgmesh.event_key_digest(t, s, i)::text AS digest
      FROM unnest(${keys.map((k) => k[0])}::text[], ${keys.map((k) => k[1])}::text[],
                  ${keys.map((k) => k[2])}::text[]) WITH ORDINALITY AS k(t, s, i, n)
      ORDER BY n`;
    expect(keys.map(([t, s, i]) => eventKeyDigest(t, s, i))).toEqual(rows.map((r) => r.digest));
  });
});
