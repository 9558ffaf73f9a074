// The web console's API: AdminService and PublisherService over Connect on the console listener,
// with the same authentication, permissions, failure limits, list trimming and audit as gRPC (a
// Connect call and a gRPC call are refused with the same words), and the RPCs the console added
// (ListTopicEvents, the overview summaries, ListConsumers) over gRPC too.
import { request } from "node:http";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { status } from "@grpc/grpc-js";
import { PgmeshClient } from "@pgmesh/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../console/src/gen/pgmesh/v1/admin_pb.ts";
import { PublisherService } from "../../console/src/gen/pgmesh/v1/publisher_pb.ts";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe } from "../support/stream-probe.ts";
import { until } from "../support/until.ts";

const ADMIN_TOKEN = "console-admin-token-0123456789abcdef012345";
let db: TestDatabase;
let mesh: TestBroker;
const clients: PgmeshClient[] = [];

function connect(token: string | undefined, broker: TestBroker = mesh) {
  const bearer: Interceptor = (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createConnectTransport({
    baseUrl: `http://${broker.broker.consoleAddress}`,
    httpVersion: "1.1",
    useBinaryFormat: true,
    interceptors: [bearer],
  });
  return {
    admin: createClient(AdminService, transport),
    publisher: createClient(PublisherService, transport),
  };
}

function grpc(token: string): PgmeshClient {
  const c = new PgmeshClient(mesh.address, { token, timeoutMs: 5_000 });
  clients.push(c);
  return c;
}

async function refusal(promise: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof ConnectError)) throw error;
    return { code: error.code, message: error.rawMessage };
  }
  throw new Error("expected the call to fail");
}

let readerToken: string;

/** fetch() sets Host itself; node:http sends the one given, as a DNS-rebinding page's request would. */
function statusWithHost(address: string, host: string): Promise<number> {
  const colon = address.lastIndexOf(":");
  return new Promise((resolve, reject) => {
    const req = request(
      { host: address.slice(0, colon), port: Number(address.slice(colon + 1)), path: "/", headers: { host } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  mesh = await startTestBroker(
    db.url,
    { PGMESH_AUTH: "on", PGMESH_ADMIN_TOKEN: ADMIN_TOKEN, PGMESH_AUTH_FAILURES: "5" },
    { token: ADMIN_TOKEN },
  );
  for (const topic of ["orders.eu", "payments.eu"]) {
    await mesh.client.createTopic(topic);
    await mesh.client.createSubscription(`${topic}.audit`, topic, { maxDeliveryAttempts: 1 });
  }
  await mesh.client.createPrincipal("orders-reader", ["read:orders.*"]);
  readerToken = (await mesh.client.createToken("orders-reader")).token;
});

afterAll(async () => {
  for (const c of clients) c.close();
  await mesh?.stop();
  await db?.drop();
});

describe("the Connect API has the gRPC API's access rules", () => {
  it("without a token: UNAUTHENTICATED, in the same words as gRPC", async () => {
    const overConnect = await refusal(connect(undefined).admin.listTopics({}));
    const overGrpc = await rejection(new PgmeshClient(mesh.address).listTopics());
    expect(overConnect).toEqual({ code: Code.Unauthenticated, message: overGrpc.details });
    expect(overGrpc.code).toBe(status.UNAUTHENTICATED);
  });

  it("a read-only token may read but not redrive, purge, seek or publish; refused as over gRPC", async () => {
    const reader = connect(readerToken);
    expect((await reader.admin.getSubscriptionStats({ name: "orders.eu.audit" })).backlog).toBe(0n);
    const forged = await refusal(
      reader.admin.redriveDeadLetters({ filter: { subscription: "orders.eu.audit" } }),
    );
    const overGrpc = await rejection(grpc(readerToken).redriveDeadLetters("orders.eu.audit"));
    expect(forged).toEqual({ code: Code.PermissionDenied, message: overGrpc.details });
    expect(forged.message).toBe(
      'permission denied: orders-reader may not manage subscription "orders.eu.audit"',
    );
    for (const call of [
      () => reader.admin.purgeDeadLetters({ filter: { subscription: "orders.eu.audit" } }),
      () => reader.admin.listDeadLetters({ filter: { subscription: "orders.eu.audit" } }),
      () =>
        reader.admin.seekSubscription({
          subscription: "orders.eu.audit",
          to: { at: { case: "now", value: {} } },
        }),
      () =>
        reader.publisher.publish({
          topic: "orders.eu",
          events: [{ id: "x", source: "orders-reader", type: "t" }],
        }),
      () => reader.admin.getTopic({ name: "payments.eu" }),
      () => reader.admin.listPrincipals({}),
    ]) {
      expect((await refusal(call())).code).toBe(Code.PermissionDenied);
    }
  });

  it("lists and summaries show only what the caller may read, over Connect and gRPC", async () => {
    const reader = connect(readerToken);
    expect((await reader.admin.listTopics({})).topics.map((t) => t.name)).toEqual(["orders.eu"]);
    await until(async () => (await mesh.client.listTopicSummaries()).totalSize === 2, "the gauge refresh");
    const topics = await reader.admin.listTopicSummaries({});
    expect(topics.topics.map((t) => t.name)).toEqual(["orders.eu"]);
    expect(topics.totalSize).toBe(1);
    const subs = await grpc(readerToken).listSubscriptionSummaries({});
    expect(subs.subscriptions.map((s) => s.name)).toEqual(["orders.eu.audit"]);
    expect((await mesh.client.listSubscriptionSummaries({ search: "PAYMENTS" })).subscriptions).toHaveLength(
      1,
    );
  });

  it("an admin action over Connect is in the audit log under its principal", async () => {
    await connect(ADMIN_TOKEN).admin.createTopic({ name: "console.made" });
    const refused = await refusal(connect(readerToken).admin.deleteTopic({ name: "orders.eu" }));
    expect(refused.code).toBe(Code.PermissionDenied);
    const records = (await mesh.client.listAuditLog()).records;
    expect(records).toContainEqual(
      expect.objectContaining({
        principal: "admin",
        // The token that acted, named as the gRPC interceptor names it.
        credential: expect.stringMatching(/^token [0-9a-f]{16}$/),
        method: "CreateTopic",
        resource: "topic console.made",
        result: "OK",
      }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({
        principal: "orders-reader",
        method: "DeleteTopic",
        result: "PERMISSION_DENIED",
      }),
    );
  });
});

describe("failure limits", () => {
  // On a broker of its own: the limit is per address too, and would refuse the other tests' calls.
  it("failed authentications count against one limit, whichever protocol carries them", async () => {
    const wrong = "console-wrong-token-0000000000000000000000";
    const limited = await startTestBroker(db.url, { PGMESH_AUTH: "on", PGMESH_AUTH_FAILURES: "5" });
    const wrongGrpc = new PgmeshClient(limited.address, { token: wrong });
    try {
      for (let i = 0; i < 3; i++) {
        expect((await refusal(connect(wrong, limited).admin.listTopics({}))).code).toBe(Code.Unauthenticated);
      }
      for (let i = 0; i < 2; i++) {
        expect((await rejection(wrongGrpc.listTopics())).code).toBe(status.UNAUTHENTICATED);
      }
      const refused = await refusal(connect(wrong, limited).admin.listTopics({}));
      expect(refused.code).toBe(Code.ResourceExhausted);
      expect(refused.message).toMatch(/^too many failed authentications/);
      expect((await rejection(wrongGrpc.listTopics())).code).toBe(status.RESOURCE_EXHAUSTED);
    } finally {
      wrongGrpc.close();
      await limited.stop();
    }
  });
});

describe("the console's RPCs over gRPC", () => {
  it("ListTopicEvents pages newest first, from a position and from a time", async () => {
    await mesh.client.createTopic("events.browse");
    const before = new Date();
    const published = await mesh.client.publish(
      "events.browse",
      Array.from({ length: 5 }, (_, i) => ({ id: `e${i}`, source: "test", type: "t" })),
    );
    expect(published).toHaveLength(5);
    const newest = await mesh.client.listTopicEvents("events.browse", { pageSize: 2 });
    expect(newest.events.map((e) => e.event?.id)).toEqual(["e4", "e3"]);
    const next = await mesh.client.listTopicEvents("events.browse", {
      pageSize: 2,
      pageToken: newest.nextPageToken,
    });
    expect(next.events.map((e) => e.event?.id)).toEqual(["e2", "e1"]);
    const second = newest.events[1]?.position as number;
    const from = await mesh.client.listTopicEvents("events.browse", {
      from: { position: second },
      pageSize: 10,
    });
    expect(from.events.map((e) => e.event?.id)).toEqual(["e3", "e4"]);
    expect(from.nextPageToken).toBe("");
    const byTime = await mesh.client.listTopicEvents("events.browse", { from: before });
    expect(byTime.events.map((e) => e.event?.id)).toEqual(["e0", "e1", "e2", "e3", "e4"]);
    const future = await mesh.client.listTopicEvents("events.browse", {
      from: new Date(Date.now() + 60_000),
    });
    expect(future.events).toEqual([]);
    expect(await rejection(mesh.client.listTopicEvents("events.browse", { pageToken: "x1" }))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "page_token is not one this server returned",
    });
    expect((await rejection(mesh.client.listTopicEvents("events.browse", { pageSize: 101 }))).code).toBe(
      status.INVALID_ARGUMENT,
    );
    expect((await rejection(mesh.client.listTopicEvents("no.such.topic"))).code).toBe(status.NOT_FOUND);
  });

  it("ListConsumers names this broker's streams on the subscription", async () => {
    expect(await mesh.client.listConsumers("orders.eu.audit")).toEqual([]);
    const subscriber = mesh.client.subscribeRaw("orders.eu.audit", async () => {}, {
      consumerName: "console-test",
    });
    await subscriber.ready;
    const consumers = await mesh.client.listConsumers("orders.eu.audit");
    expect(consumers).toHaveLength(1);
    expect(consumers[0]?.name).toBe("console-test");
    expect(consumers[0]?.connectTime).toBeInstanceOf(Date);
    expect(consumers[0]?.maxOutstandingMessages).toBeGreaterThan(0);
    await subscriber.close();
    expect((await rejection(mesh.client.listConsumers("no.such.sub"))).code).toBe(status.NOT_FOUND);
  });

  it("summaries page and count, with the numbers of the gauge refresh", async () => {
    await mesh.client.publish("payments.eu", [{ id: "p1", source: "test", type: "t" }]);
    await until(
      async () =>
        (await mesh.client.listSubscriptionSummaries({ search: "payments" })).subscriptions[0]?.backlog === 1,
      "the backlog in the summary",
    );
    const first = await mesh.client.listTopicSummaries({ pageSize: 2 });
    expect(first.topics).toHaveLength(2);
    const rest = await mesh.client.listTopicSummaries({ pageSize: 2, pageToken: first.nextPageToken });
    expect([...first.topics, ...rest.topics].map((t) => t.name).sort()).toEqual(
      ["console.made", "events.browse", "orders.eu", "payments.eu"].slice(0, first.totalSize).sort(),
    );
    expect((await mesh.client.listTopicSummaries({ search: "payments" })).topics[0]?.published).toBe(1);
    // Delivered and acked by this broker, from its Prometheus counters.
    const probe = await StreamProbe.open(mesh.client, "payments.eu.audit", 10);
    const [delivery] = await probe.waitForDeliveries(1);
    await probe.ackAndWait([delivery?.ackId as string]);
    probe.cancel();
    const [summary] = (await mesh.client.listSubscriptionSummaries({ search: "payments" })).subscriptions;
    expect([summary?.delivered, summary?.acked]).toEqual([1, 1]);
    expect((await rejection(mesh.client.listTopicSummaries({ pageToken: "abc" }))).code).toBe(
      status.INVALID_ARGUMENT,
    );
  });
});

describe("the console listener", () => {
  it("serves the app with its security headers, compressed", async () => {
    const page = await fetch(`http://${mesh.broker.consoleAddress}/`, {
      headers: { "accept-encoding": "gzip" },
    });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(page.headers.get("content-encoding")).toBe("gzip");
    const html = await page.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`http://${mesh.broker.consoleAddress}${script}`);
    expect(asset.headers.get("content-type")).toContain("text/javascript");
    expect(asset.headers.get("cache-control")).toContain("immutable");
    expect((await fetch(`http://${mesh.broker.consoleAddress}/nothing-here`)).status).toBe(404);
  });

  it("takes no request a cross-site page could send without asking (no simple POST, no GET)", async () => {
    const base = `http://${mesh.broker.consoleAddress}/pgmesh.v1.AdminService/ListTopics`;
    const simple = await fetch(base, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "{}",
    });
    expect(simple.status).toBe(415);
    expect((await fetch(base)).status).toBe(405);
  });

  it("without authentication, answers only to a local Host (no DNS rebinding)", async () => {
    const open = await startTestBroker(db.url, {});
    try {
      const base = `http://${open.broker.consoleAddress}`;
      expect((await fetch(`${base}/`)).status).toBe(200);
      expect(await statusWithHost(open.broker.consoleAddress as string, "attacker.example")).toBe(421);
      expect(await statusWithHost(open.broker.consoleAddress as string, "localhost")).toBe(200);
      expect((await connect(undefined, open).admin.listTopics({})).topics.length).toBeGreaterThan(0);
    } finally {
      await open.stop();
    }
  });

  it("is not started with PGMESH_CONSOLE_ADDRESS=off", async () => {
    const off = await startTestBroker(db.url, { PGMESH_CONSOLE_ADDRESS: "off" });
    expect(off.broker.consoleAddress).toBeUndefined();
    await off.stop();
  });
});
