// Open streams end when their caller's access does, on every broker: two real brokers on one
// database with authentication on. A consumer streams from broker b; its token is revoked, its
// principal deleted or its grant taken away through broker a (or by SQL), or its token expires;
// the stream ends within a second with UNAUTHENTICATED or PERMISSION_DENIED, an ack sent after
// that is not settled, and the events it held go to another consumer at once.
import { status } from "@grpc/grpc-js";
import { PgmeshClient } from "@pgmesh/sdk";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { StreamProbe } from "../support/stream-probe.ts";

const ADMIN_TOKEN = "test-admin-token-revocation-0123456789abcdef";

let db: TestDatabase;
let a: TestBroker;
let b: TestBroker;
const clients: PgmeshClient[] = [];

function as(token: string, broker: TestBroker): PgmeshClient {
  const c = new PgmeshClient(broker.address, { token, timeoutMs: 5_000 });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { PGMESH_AUTH: "on", PGMESH_ADMIN_TOKEN: ADMIN_TOKEN };
  a = await startTestBroker(db.url, env, { token: ADMIN_TOKEN });
  b = await startTestBroker(db.url, env, { token: ADMIN_TOKEN });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await a?.stop();
  await b?.stop();
  await db?.drop();
});

/**
 * A topic and a subscription that redelivers at once, a consumer principal with a token, three
 * events published, and the consumer's stream on broker b holding all three unacked.
 */
async function consuming(name: string, tokenTtlSeconds?: number) {
  await a.client.createTopic(name);
  await a.client.createSubscription(`${name}.sub`, name, {
    ackDeadlineSeconds: 600,
    retryPolicy: { initialBackoffSeconds: 0, maxBackoffSeconds: 0, multiplier: 1, jitter: 0 },
  });
  await a.client.createPrincipal(`${name}-consumer`, [`consume:${name}.*`]);
  const { token, info } = await a.client.createToken(`${name}-consumer`, { ttlSeconds: tokenTtlSeconds });
  const probe = await StreamProbe.open(as(token, b), `${name}.sub`);
  await a.client.publish(
    name,
    [1, 2, 3].map((i) => ({ id: String(i), source: "test", type: "t" })),
  );
  await probe.until(() => probe.deliveries.length === 3, "three deliveries");
  return { probe, tokenId: info.id, principal: `${name}-consumer`, subscription: `${name}.sub` };
}

/** Waits for the stream's end and says how long after `since` it came (or fails after 5 s). */
async function endedWithin(probe: StreamProbe, since: number) {
  const ended = await Promise.race([
    probe.ended,
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 5_000)),
  ]);
  expect(ended, "the stream was still open 5 s later").toBeDefined();
  return { ...(ended as { code: number; details: string }), afterMs: Date.now() - since };
}

/** The events the ended stream held come to another consumer (with a valid token) right away. */
async function redelivered(subscription: string) {
  const other = await StreamProbe.open(a.client, subscription);
  await other.until(() => other.deliveries.length === 3, "the three events again");
  expect(other.deliveries.map((d) => d.event?.id).sort()).toEqual(["1", "2", "3"]);
  other.call.end();
  await other.ended;
}

describe("open streams end with their caller's access", () => {
  it("a token revoked on broker a ends its stream on broker b within 1 s; later acks are not settled", async () => {
    const { probe, tokenId, subscription } = await consuming("revoked");
    const bystander = await consuming("bystander");
    const revokedAt = Date.now();
    await a.client.revokeToken(tokenId);
    const ended = await endedWithin(probe, revokedAt);
    expect(ended).toMatchObject({ code: status.UNAUTHENTICATED, details: "the token has been revoked" });
    expect(ended.afterMs).toBeLessThan(1_000);

    // An ack sent now is not settled: no result comes back, and the events go to another consumer.
    probe.ack(probe.deliveries.map((d) => d.ackId));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(probe.ackResults).toEqual([]);
    await redelivered(subscription);

    // A stream of another principal is untouched.
    bystander.probe.ack(bystander.probe.deliveries.map((d) => d.ackId));
    await bystander.probe.until(() => bystander.probe.ackResults.length === 3, "the bystander's acks");
    bystander.probe.call.end();
    expect((await bystander.probe.ended).code).toBe(status.OK);
  });

  it("deleting the principal ends its streams with UNAUTHENTICATED", async () => {
    const { probe, principal, subscription } = await consuming("deleted");
    const deletedAt = Date.now();
    await a.client.deletePrincipal(principal);
    const ended = await endedWithin(probe, deletedAt);
    expect(ended.code).toBe(status.UNAUTHENTICATED);
    expect(ended.afterMs).toBeLessThan(1_000);
    await redelivered(subscription);
  });

  it("a grant taken away (by SQL, as an operator would) ends the stream with PERMISSION_DENIED", async () => {
    const { probe, principal, subscription } = await consuming("narrowed");
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const changedAt = Date.now();
      await sql`UPDATE pgmesh.principals SET grants = '{read:*}' WHERE name = ${principal}`;
      const ended = await endedWithin(probe, changedAt);
      expect(ended).toMatchObject({
        code: status.PERMISSION_DENIED,
        details: `permission denied: ${principal} may not consume subscription "${subscription}"`,
      });
      expect(ended.afterMs).toBeLessThan(1_000);
    } finally {
      await sql.end();
    }
    await redelivered(subscription);
  });

  it("UpdatePrincipal taking the grant away ends the stream on the other broker; a stream still allowed stays", async () => {
    const { probe, principal, subscription } = await consuming("updated");
    const changedAt = Date.now();
    await a.client.updatePrincipal(principal, ["consume:other.*", "read:*"]);
    const ended = await endedWithin(probe, changedAt);
    expect(ended.code).toBe(status.PERMISSION_DENIED);
    expect(ended.afterMs).toBeLessThan(1_000);
    await redelivered(subscription);

    // Narrowing a principal to what its stream uses leaves the stream alone; its tokens stay valid.
    const kept = await consuming("kept");
    await a.client.updatePrincipal(kept.principal, ["consume:kept.sub"]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    kept.probe.ack(kept.probe.deliveries.map((d) => d.ackId));
    await kept.probe.until(() => kept.probe.ackResults.length === 3, "the acks of the stream still allowed");
    kept.probe.call.end();
    expect((await kept.probe.ended).code).toBe(status.OK);
  });

  it("a token that expires ends its stream at its expiry", async () => {
    const { probe, subscription } = await consuming("expiring", 3);
    const tokens = await a.client.listTokens("expiring-consumer");
    const expiry = tokens[0]?.expireTime?.getTime() as number;
    const ended = await endedWithin(probe, expiry);
    expect(ended).toMatchObject({ code: status.UNAUTHENTICATED, details: "the token has expired" });
    expect(ended.afterMs).toBeLessThan(1_000);
    await redelivered(subscription);
  });
});
