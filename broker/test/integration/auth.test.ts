// Tokens and permissions against two real brokers on one database with authentication on: wrong,
// absent, expired and revoked tokens (revoked on one broker, refused by the other within a
// second), a token allowed on one topic and denied on another for publish, subscribe and every
// admin RPC, list responses trimmed to what the caller may read, source binding, the CLI, and the
// audit log.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { status } from "@grpc/grpc-js";
import { AdminServiceService } from "@pgmesh/proto/pgmesh/v1/admin";
import { PgmeshClient } from "@pgmesh/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Logger } from "../../src/log.ts";
import { tokenDigest, tokenId } from "../../src/security/tokens.ts";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe } from "../support/stream-probe.ts";

const ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123456789";
const pgmesh = fileURLToPath(new URL("../../bin/pgmesh.js", import.meta.url));
const run = promisify(execFile);

let db: TestDatabase;
let a: TestBroker;
let b: TestBroker;
const clients: PgmeshClient[] = [];
// Everything both brokers log, at every level, and every token used here: scanned at the end.
const logged: string[] = [];
const used = new Set<string>([ADMIN_TOKEN]);
const recorder: Logger = {
  debug: (m) => logged.push(m),
  info: (m) => logged.push(m),
  warn: (m) => logged.push(m),
  error: (m, e) => logged.push(`${m} ${e instanceof Error ? e.stack : String(e)}`),
};

function as(token: string | undefined, broker: TestBroker = a): PgmeshClient {
  if (token) used.add(token);
  const c = new PgmeshClient(broker.address, { token, timeoutMs: 5_000 });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { PGMESH_AUTH: "on", PGMESH_ADMIN_TOKEN: ADMIN_TOKEN };
  a = await startTestBroker(db.url, env, { token: ADMIN_TOKEN }, recorder);
  b = await startTestBroker(db.url, env, { token: ADMIN_TOKEN }, recorder);
  for (const topic of ["orders.eu", "payments.eu"]) {
    await a.client.createTopic(topic);
    await a.client.createSubscription(`${topic}.audit`, topic);
  }
});

afterAll(async () => {
  for (const c of clients) c.close();
  await a?.stop();
  await b?.stop();
  await db?.drop();
});

describe("authentication", () => {
  it("refuses a call without a token, and a wrong token, with UNAUTHENTICATED", async () => {
    const absent = await rejection(as(undefined).listTopics());
    expect(absent).toEqual({
      code: status.UNAUTHENTICATED,
      details: "authentication required: send `authorization: Bearer <token>`",
    });
    const wrong = await rejection(as("pgm_not-a-token-anyone-issued").listTopics());
    expect(wrong).toEqual({ code: status.UNAUTHENTICATED, details: "the token is not valid" });
    // A token whose id matches but whose digest does not is just as wrong.
    const stream = StreamProbe.raw(as(undefined));
    expect((await stream.ended).code).toBe(status.UNAUTHENTICATED);
  });

  it("refuses an expired token", async () => {
    await a.client.createPrincipal("short-lived", ["read:*"]);
    const { token, info } = await a.client.createToken("short-lived", { ttlSeconds: 1 });
    expect(info.expireTime).toBeDefined();
    await as(token).listTopics();
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await rejection(as(token).listTopics())).toEqual({
      code: status.UNAUTHENTICATED,
      details: "the token has expired",
    });
  });

  it("a token revoked on one broker is refused by the other within a second", async () => {
    await a.client.createPrincipal("revocable", ["read:*"]);
    const { token, info } = await a.client.createToken("revocable", { description: "to revoke" });
    const onA = as(token, a);
    const onB = as(token, b);
    await onA.listTopics(); // cached on both now
    await onB.listTopics();
    expect((await b.client.listTokens("revocable")).map((t) => t.id)).toEqual([info.id]);

    const revokedAt = Date.now();
    await a.client.revokeToken(info.id);
    // The revoking broker does not wait for its own NOTIFY to come back.
    expect((await rejection(onA.listTopics())).code).toBe(status.UNAUTHENTICATED);
    let refusedAfter: number | undefined;
    while (Date.now() - revokedAt < 1_000) {
      const refused = await onB.listTopics().then(
        () => false,
        (error: { code: number }) => error.code === status.UNAUTHENTICATED,
      );
      if (refused) {
        refusedAfter = Date.now() - revokedAt;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(refusedAfter, "broker b still accepted the revoked token after 1 s").toBeDefined();
    expect(await rejection(onB.listTopics())).toEqual({
      code: status.UNAUTHENTICATED,
      details: "the token has been revoked",
    });
    expect((await a.client.listTokens("revocable"))[0]?.revokeTime).toBeDefined();
  });

  it("health checks stay open without a token; refusals are counted in the metrics", async () => {
    const health = await fetch(`http://${a.broker.metricsAddress}/readyz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`http://${a.broker.metricsAddress}/metrics`)).text();
    expect(metrics).toMatch(/pgmesh_grpc_requests_total\{method="ListTopics",code="UNAUTHENTICATED"\} [1-9]/);
  });
});

describe("permissions", () => {
  let team: PgmeshClient;
  let teamToken: string;
  beforeAll(async () => {
    await a.client.createPrincipal(
      "orders-team",
      ["publish:orders.*", "consume:orders.*", "manage:orders.*"],
      ["orders-service", "orders-batch-*"],
    );
    teamToken = (await a.client.createToken("orders-team")).token;
    team = as(teamToken);
  });

  it("publish: allowed on its topics, denied on others, naming permission and resource", async () => {
    const [ok] = await team.publish("orders.eu", [{ id: "1", source: "orders-service", type: "t" }]);
    expect(ok?.duplicate).toBe(false);
    expect(
      await rejection(team.publish("payments.eu", [{ id: "1", source: "orders-service", type: "t" }])),
    ).toEqual({
      code: status.PERMISSION_DENIED,
      details: 'permission denied: orders-team may not publish topic "payments.eu"',
    });
  });

  it("publish: only as the sources the principal is bound to", async () => {
    await team.publish("orders.eu", [{ id: "2", source: "orders-batch-nightly", type: "t" }]);
    const forged = await rejection(
      team.publish("orders.eu", [
        { id: "3", source: "orders-service", type: "t" },
        { id: "4", source: "payments-service", type: "t" },
      ]),
    );
    expect(forged).toEqual({
      code: status.PERMISSION_DENIED,
      details: 'permission denied: orders-team may not publish events with source "payments-service"',
    });
    // Nothing of the refused batch was published.
    expect((await a.client.subscriptionStats("orders.eu.audit")).backlog).toBe(2);
  });

  it("subscribe: allowed on its subscriptions, denied on others", async () => {
    const allowed = await StreamProbe.open(team, "orders.eu.audit");
    await allowed.until(() => allowed.deliveries.length === 2, "the two deliveries");
    allowed.call.end();
    await allowed.ended;

    const denied = StreamProbe.raw(team);
    denied.send({
      request: {
        $case: "open",
        value: {
          subscription: "payments.eu.audit",
          consumer: "x",
          maxOutstandingMessages: 1,
          maxOutstandingBytes: 0,
        },
      },
    });
    expect(await denied.ended).toEqual({
      code: status.PERMISSION_DENIED,
      details: 'permission denied: orders-team may not consume subscription "payments.eu.audit"',
    });
  });

  // Each AdminService RPC on a resource of the team's, then on one of another team's. The record's
  // type makes every RPC appear here; the test below checks it at run time too.
  const admin: Record<
    keyof typeof AdminServiceService,
    ((c: PgmeshClient, topic: string, sub: string) => Promise<unknown>) | "list" | "admin only"
  > = {
    createTopic: (c, t) => c.createTopic(`${t}.new`),
    getTopic: (c, t) => c.getTopic(t),
    listTopics: "list",
    updateTopic: (c, t) => c.updateTopic(t, { retentionSeconds: 3600 }),
    deleteTopic: (c, t) => c.deleteTopic(`${t}.missing`),
    setTopicSchema: (c, t) => c.setTopicSchema(t, new Uint8Array(), []),
    getTopicSchema: (c, t) => c.getTopicSchema(t),
    createSubscription: (c, t) => c.createSubscription(`${t}.extra`, t),
    getSubscription: (c, _t, s) => c.getSubscription(s),
    updateSubscription: (c, _t, s) => c.updateSubscription(s, { ackDeadlineSeconds: 30 }),
    getSubscriptionStats: (c, _t, s) => c.subscriptionStats(s),
    listSubscriptions: "list",
    deleteSubscription: (c, _t, s) => c.deleteSubscription(`${s}.missing`),
    seekSubscription: (c, _t, s) => c.seekSubscription(s, "now"),
    listDeadLetters: (c, _t, s) => c.listDeadLetters({ subscription: s }),
    redriveDeadLetters: (c, _t, s) => c.redriveDeadLetters(s, { ids: ["1"] }),
    purgeDeadLetters: (c, _t, s) => c.purgeDeadLetters(s, { ids: ["1"] }),
    listParkedKeys: (c, _t, s) => c.listParkedKeys(s),
    releaseParkedKeys: (c, _t, s) => c.releaseParkedKeys(s, ["k"]),
    listTopicEvents: (c, t) => c.listTopicEvents(t),
    listTopicSummaries: "list",
    listSubscriptionSummaries: "list",
    listConsumers: (c, _t, s) => c.listConsumers(s),
    createPrincipal: "admin only",
    listPrincipals: "admin only",
    updatePrincipal: "admin only",
    deletePrincipal: "admin only",
    createToken: "admin only",
    listTokens: "admin only",
    revokeToken: "admin only",
    listAuditLog: "admin only",
  };

  it("covers every AdminService RPC", () => {
    expect(Object.keys(admin).sort()).toEqual(Object.keys(AdminServiceService).sort());
  });

  for (const [method, call] of Object.entries(admin)) {
    if (typeof call !== "function") continue;
    it(`${method}: allowed on orders.eu, denied on payments.eu`, async () => {
      const allowed = await call(team, "orders.eu", "orders.eu.audit").then(
        () => status.OK,
        (error: { code: number }) => error.code,
      );
      expect([status.PERMISSION_DENIED, status.UNAUTHENTICATED]).not.toContain(allowed);
      const denied = await rejection(call(team, "payments.eu", "payments.eu.audit"));
      expect(denied.code).toBe(status.PERMISSION_DENIED);
      expect(denied.details).toMatch(
        /^permission denied: orders-team may not (read|manage|consume) (topic|subscription) "payments\.eu/,
      );
    });
  }

  it("the access RPCs need admin", async () => {
    const calls = [
      team.createPrincipal("sneaky", ["admin"]),
      team.listPrincipals(),
      team.updatePrincipal("orders-team", ["admin"]),
      team.deletePrincipal("orders-team"),
      team.createToken("orders-team"),
      team.listTokens(),
      team.revokeToken("0000000000000000"),
      team.listAuditLog(),
    ];
    for (const denied of await Promise.all(calls.map(rejection))) {
      expect(denied.code).toBe(status.PERMISSION_DENIED);
      expect(denied.details).toMatch(/^permission denied: orders-team may not admin /);
    }
  });

  it("a denial does not tell whether the resource exists", async () => {
    const existing = await rejection(team.getTopic("payments.eu"));
    const missing = await rejection(team.getTopic("payments.ghost"));
    expect(existing.code).toBe(missing.code);
    expect(existing.details.replace("payments.eu", "X")).toBe(missing.details.replace("payments.ghost", "X"));
  });

  it("lists only what the caller may read", async () => {
    expect((await team.listTopics()).topics.map((t) => t.name)).toEqual(["orders.eu", "orders.eu.new"]);
    const subs = (await team.listSubscriptions()).subscriptions.map((s) => s.name);
    expect(subs).toEqual(["orders.eu.audit", "orders.eu.extra"]);
    expect((await a.client.listTopics()).topics.map((t) => t.name)).toContain("payments.eu");
  });

  // The CLI looks up the topic's schema before publishing, so it is refused at that first step.
  it("the CLI sends the token: allowed on one topic, denied on another", { timeout: 60_000 }, async () => {
    const cli = (...args: string[]) =>
      run(process.execPath, [pgmesh, "-a", a.address, ...args], {
        env: { ...process.env, PGMESH_TOKEN: teamToken },
      });
    const ok = await cli("publish", "orders.eu", '{"type":"t"}', "--source", "orders-service");
    expect(ok.stdout).toContain("published");
    const denied = await cli("publish", "payments.eu", '{"type":"t"}', "--source", "orders-service").then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(denied?.code).toBe(1);
    expect(denied?.stderr).toContain(
      'permission denied: orders-team may not read topic "payments.eu" (PERMISSION_DENIED)',
    );
  });
});

describe("access administration and the audit log", { timeout: 90_000 }, () => {
  const cli = (...args: string[]) =>
    run(process.execPath, [pgmesh, "-a", a.address, "--token", ADMIN_TOKEN, ...args]);

  it("the CLI creates a principal and a token (shown once), lists and revokes it", async () => {
    const created = await cli(
      "principals",
      "create",
      "cli-reader",
      "--grant",
      "read:orders.*",
      "--source",
      "x",
    );
    expect(created.stdout).toContain("created principal cli-reader: read:orders.* (sources: x)");
    const issued = await cli("tokens", "create", "cli-reader", "--ttl", "3600", "-d", "for the test");
    const token = issued.stdout.trim();
    expect(token).toMatch(/^pgm_[A-Za-z0-9_-]{43}$/);
    expect((await as(token).getTopic("orders.eu")).name).toBe("orders.eu");

    const listed = (await cli("tokens", "list", "cli-reader")).stdout;
    expect(listed).toContain("for the test");
    expect(listed).not.toContain(token);
    const id = listed.split("\t")[0] as string;
    expect((await cli("tokens", "revoke", id)).stdout).toContain(`revoked token ${id} of cli-reader`);
    expect((await cli("principals", "list")).stdout).toContain("cli-reader\tread:orders.* (sources: x)");
    expect((await cli("principals", "delete", "cli-reader")).stdout).toContain(
      "deleted principal cli-reader",
    );
  });

  it("records who did what with which credential, when, with what result; reads are not recorded", async () => {
    const before = Date.now();
    const issued = await a.client.createToken("orders-team");
    const team = as(issued.token);
    await team.createTopic("orders.audited");
    await rejection(team.deleteTopic("payments.eu"));
    await team.getTopic("orders.audited");

    // The token's id names the credential: a principal with several tokens (a leaked one among
    // them) shows which one acted.
    const teamToken = `token ${issued.info?.id}`;
    const adminToken = `token ${tokenId(tokenDigest(ADMIN_TOKEN))}`;
    const { records } = await a.client.listAuditLog({ pageSize: 3 });
    expect(records.map((r) => [r.principal, r.credential, r.method, r.resource, r.result, r.detail])).toEqual(
      [
        [
          "orders-team",
          teamToken,
          "DeleteTopic",
          "topic payments.eu",
          "PERMISSION_DENIED",
          'permission denied: orders-team may not manage topic "payments.eu"',
        ],
        ["orders-team", teamToken, "CreateTopic", "topic orders.audited", "OK", ""],
        ["admin", adminToken, "CreateToken", "principal orders-team", "OK", ""],
      ],
    );
    for (const r of records) expect(r.time?.getTime()).toBeGreaterThanOrEqual(before - 1000);

    const audit = (await cli("audit", "--principal", "orders-team", "--limit", "2")).stdout
      .trim()
      .split("\n");
    expect(audit).toHaveLength(2);
    expect(audit[0]).toContain(
      `\torders-team\t${teamToken}\tDeleteTopic\ttopic payments.eu\tPERMISSION_DENIED\t`,
    );
    const paged = await a.client.listAuditLog({ pageSize: 1 });
    const next = await a.client.listAuditLog({ pageSize: 1, pageToken: paged.nextPageToken });
    expect(Number(next.records[0]?.id)).toBeLessThan(Number(paged.records[0]?.id));
  });

  it("refuses bad principals with a message naming the field", async () => {
    expect(await rejection(a.client.createPrincipal("x", ["fly:*"]))).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'grant "fly:*": the permission must be one of publish, consume, read, manage, admin',
    });
    expect(await rejection(a.client.createPrincipal("bad name", ["read:*"]))).toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    expect(await rejection(a.client.createToken("nobody"))).toMatchObject({
      code: status.NOT_FOUND,
      details: "principal nobody not found",
    });
  });
});

describe("the brokers' logs", () => {
  it("hold none of the tokens used in this file", () => {
    expect(logged.join("\n")).toContain("serving gRPC on");
    expect(used.size).toBeGreaterThan(5);
    for (const token of used) expect(logged.join("\n")).not.toContain(token);
  });
});
