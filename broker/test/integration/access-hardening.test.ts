// Issue 20's access fixes against real brokers and Postgres: principals bound to their own name
// as source unless granted more (and the upgrade that keeps existing principals as they were),
// list pages and tokens that never show a name the caller may not read, the Bearer scheme
// required, failed authentications limited per address and per token, and a changed
// PGMESH_ADMIN_TOKEN revoking the previous one.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Metadata, status } from "@grpc/grpc-js";
import { PgmeshClient } from "@pgmesh/sdk";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../../src/store/migrate.ts";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { rejection } from "../support/rejection.ts";

const ADMIN_TOKEN = "test-admin-token-hardening-0123456789abcdef";
const pgmesh = fileURLToPath(new URL("../../bin/pgmesh.js", import.meta.url));
const run = promisify(execFile);

let db: TestDatabase;
let mesh: TestBroker;
const clients: PgmeshClient[] = [];
const databases: TestDatabase[] = [];

function as(token: string, address = mesh.address): PgmeshClient {
  const c = new PgmeshClient(address, { token, timeoutMs: 5_000 });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  db = await createTestDatabase();
  mesh = await startTestBroker(
    db.url,
    { PGMESH_AUTH: "on", PGMESH_ADMIN_TOKEN: ADMIN_TOKEN },
    { token: ADMIN_TOKEN },
  );
});

afterAll(async () => {
  for (const c of clients) c.close();
  await mesh?.stop();
  await db?.drop();
  for (const d of databases) await d.drop();
});

describe("source binding by default", { timeout: 60_000 }, () => {
  it("a principal created without sources publishes as its own name only; * is granted explicitly", async () => {
    await mesh.client.createTopic("bound");
    const created = await mesh.client.createPrincipal("shipping", ["publish:bound"]);
    expect(created.sources).toEqual(["shipping"]);
    const shipping = as((await mesh.client.createToken("shipping")).token);
    await shipping.publish("bound", [{ id: "s-1", source: "shipping", type: "t" }]);
    // Publishing first under another service's (source, id) would make its real event a duplicate.
    expect(await rejection(shipping.publish("bound", [{ id: "b-1", source: "billing", type: "t" }]))).toEqual(
      {
        code: status.PERMISSION_DENIED,
        details: 'permission denied: shipping may not publish events with source "billing"',
      },
    );

    await mesh.client.createPrincipal("gateway", ["publish:bound"], ["*"]);
    const gateway = as((await mesh.client.createToken("gateway")).token);
    const [relayed] = await gateway.publish("bound", [{ id: "b-1", source: "billing", type: "t" }]);
    expect(relayed?.duplicate).toBe(false);
  });

  it("the CLI's principals create binds the principal to its own name unless --source says more", async () => {
    const cli = (...args: string[]) =>
      run(process.execPath, [pgmesh, "-a", mesh.address, "--token", ADMIN_TOKEN, ...args]);
    expect((await cli("principals", "create", "cli-svc", "--grant", "publish:bound")).stdout).toContain(
      "created principal cli-svc: publish:bound (sources: cli-svc)",
    );
    expect(
      (await cli("principals", "create", "cli-relay", "--grant", "publish:bound", "--source", "*")).stdout,
    ).toContain("created principal cli-relay: publish:bound (sources: *)");
    // An upgraded principal (sources *) is narrowed in place, its tokens kept.
    const { token } = await mesh.client.createToken("cli-relay");
    expect((await cli("principals", "update", "cli-relay", "--grant", "publish:bound")).stdout).toContain(
      "updated principal cli-relay: publish:bound (sources: cli-relay)",
    );
    await as(token).publish("bound", [{ id: "r-1", source: "cli-relay", type: "t" }]);
    expect((await rejection(as(token).publish("bound", [{ id: "r-2", source: "x", type: "t" }]))).code).toBe(
      status.PERMISSION_DENIED,
    );
  });

  it("an upgraded database keeps its principals' behaviour: no sources becomes * (migration 0034)", async () => {
    const old = await createTestDatabase();
    databases.push(old);
    const sql = postgres(old.url, { max: 1, onnotice: () => {} });
    try {
      await migrate(sql, { through: 33 });
      await sql`INSERT INTO pgmesh.principals (name, grants) VALUES ('legacy', '{publish:*}')`;
      await sql`INSERT INTO pgmesh.principals (name, grants, sources) VALUES ('narrow', '{publish:*}', '{svc}')`;
      await migrate(sql);
      const rows = await sql`SELECT name, sources FROM pgmesh.principals ORDER BY name`;
      expect(rows.map((r) => [r.name, r.sources])).toEqual([
        ["legacy", ["*"]],
        ["narrow", ["svc"]],
      ]);
    } finally {
      await sql.end();
    }
  });
});

describe("list pages show nothing the caller may not read", () => {
  const topics = ["a.1", "b.1", "b.2", "c.1", "b.3", "c.2", "d.1"];
  let reader: PgmeshClient;
  beforeAll(async () => {
    for (const t of topics) {
      await mesh.client.createTopic(`pages.${t}`);
      await mesh.client.createSubscription(`pages.${t}.sub`, `pages.${t}`);
    }
    await mesh.client.createPrincipal("pager", ["read:pages.a.*", "read:pages.c.*"]);
    reader = as((await mesh.client.createToken("pager")).token);
  });

  /** Walks every page of one name at a time, keeping each page's names and token. */
  async function walk(list: (pageToken: string) => Promise<{ names: string[]; nextPageToken: string }>) {
    const pages: { names: string[]; nextPageToken: string }[] = [];
    let token = "";
    do {
      const page = await list(token);
      pages.push(page);
      token = page.nextPageToken;
    } while (token && pages.length < 20);
    return pages;
  }

  it("ListTopics: full pages of readable topics, tokens naming only those", async () => {
    const pages = await walk(async (pageToken) => {
      const r = await reader.listTopics(1, pageToken);
      return { names: r.topics.map((t) => t.name), nextPageToken: r.nextPageToken };
    });
    expect(pages.map((p) => p.names)).toEqual([["pages.a.1"], ["pages.c.1"], ["pages.c.2"]]);
    expect(pages.map((p) => p.nextPageToken)).toEqual(["pages.a.1", "pages.c.1", ""]);
  });

  it("ListSubscriptions: the same", async () => {
    const pages = await walk(async (pageToken) => {
      const r = await reader.listSubscriptions("", 1, pageToken);
      return { names: r.subscriptions.map((s) => s.name), nextPageToken: r.nextPageToken };
    });
    expect(pages.map((p) => p.names)).toEqual([["pages.a.1.sub"], ["pages.c.1.sub"], ["pages.c.2.sub"]]);
    for (const page of pages) expect(page.nextPageToken).not.toMatch(/pages\.[bd]\./);
  });
});

describe("the Bearer scheme", () => {
  it("refuses a token sent without `Bearer `, saying the scheme is required", async () => {
    const { token } = await mesh.client.createToken("admin");
    const metadata = new Metadata();
    metadata.set("authorization", token);
    const bare = await new Promise<{ code: number; details: string }>((resolve) =>
      mesh.client.admin.listTopics({ pageSize: 1, pageToken: "" }, metadata, (error) =>
        resolve({ code: error?.code ?? status.OK, details: error?.details ?? "" }),
      ),
    );
    expect(bare).toEqual({
      code: status.UNAUTHENTICATED,
      details: "the authorization header must use the Bearer scheme: `authorization: Bearer <token>`",
    });
    await as(token).listTopics();
  });
});

describe("failed authentications are limited", () => {
  let limited: TestBroker;
  let port: string;
  beforeAll(async () => {
    // On every interface, so that 127.0.0.1 and ::1 are two peer addresses.
    limited = await startTestBroker(
      db.url,
      {
        PGMESH_GRPC_ADDRESS: "[::]:0",
        PGMESH_AUTH: "on",
        PGMESH_AUTH_FAILURES: "5",
        PGMESH_AUTH_FAILURE_WINDOW_SECONDS: "60",
      },
      { token: ADMIN_TOKEN },
    );
    port = limited.address.slice(limited.address.lastIndexOf(":") + 1);
  });
  afterAll(async () => {
    await limited?.stop();
  });

  it("per address and per token, with RESOURCE_EXHAUSTED; a valid token from another address still works", async () => {
    const wrong = as("pgm_wrong-token-guessed-by-an-attacker", `127.0.0.1:${port}`);
    for (let i = 0; i < 5; i++) {
      expect((await rejection(wrong.listTopics())).code).toBe(status.UNAUTHENTICATED);
    }
    const exhausted = await rejection(wrong.listTopics());
    expect(exhausted.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(exhausted.details).toMatch(/^too many failed authentications .*; try again in \d+ s$/);
    // The limited address is refused before its token is looked at, a valid one too.
    expect((await rejection(as(ADMIN_TOKEN, `127.0.0.1:${port}`).listTopics())).code).toBe(
      status.RESOURCE_EXHAUSTED,
    );
    // From another address the valid token works; the token that failed five times does not.
    await as(ADMIN_TOKEN, `[::1]:${port}`).listTopics();
    const sameWrong = as("pgm_wrong-token-guessed-by-an-attacker", `[::1]:${port}`);
    expect((await rejection(sameWrong.listTopics())).code).toBe(status.RESOURCE_EXHAUSTED);
  });
});

describe("rotating PGMESH_ADMIN_TOKEN", () => {
  it("a restart with a new token revokes the old one; tokens made through the API stay", async () => {
    const rotated = await createTestDatabase();
    databases.push(rotated);
    const first = "first-admin-token-0123456789abcdef0123456789";
    const second = "second-admin-token-0123456789abcdef012345678";
    const before = await startTestBroker(
      rotated.url,
      { PGMESH_AUTH: "on", PGMESH_ADMIN_TOKEN: first },
      { token: first },
    );
    const { token: made } = await before.client.createToken("admin", { description: "made by hand" });
    await before.stop();

    const after = await startTestBroker(
      rotated.url,
      { PGMESH_AUTH: "on", PGMESH_ADMIN_TOKEN: second },
      { token: second },
    );
    try {
      await after.client.listTopics();
      expect(await rejection(as(first, after.address).listTopics())).toEqual({
        code: status.UNAUTHENTICATED,
        details: "the token has been revoked",
      });
      await as(made, after.address).listTopics();
    } finally {
      await after.stop();
    }
  });
});
