// Bad input gets the right status and a message a person understands, and loses nothing.
import { status } from "@grpc/grpc-js";
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe } from "../support/stream-probe.ts";

const t = useTestBroker();

beforeAll(async () => {
  await t.mesh.client.createTopic("errors");
  await t.mesh.client.createSubscription("errors.sub", "errors");
});

// No Postgres error text, SQL or stack frame may reach a client.
function expectNoLeak(details: string) {
  expect(details).not.toMatch(/SELECT|INSERT|relation|syntax|pgmesh\.|pgboss|at .*\.ts|constraint/i);
}

describe("admin", () => {
  it("refuses bad names with INVALID_ARGUMENT and says what a valid one looks like", async () => {
    for (const name of ["", "Upper", "has space", "1starts-with-digit", "x".repeat(101), "drop table;"]) {
      const error = await rejection(t.mesh.client.createTopic(name));
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toMatch(name ? /is not valid: use 1-100 characters/ : /name is required/);
    }
  });

  it("reports unknown topics and subscriptions as NOT_FOUND", async () => {
    expect(await rejection(t.mesh.client.getTopic("nope"))).toEqual({
      code: status.NOT_FOUND,
      details: "topic nope does not exist",
    });
    expect(await rejection(t.mesh.client.createSubscription("s.new", "nope"))).toEqual({
      code: status.NOT_FOUND,
      details: "topic nope does not exist",
    });
    expect((await rejection(t.mesh.client.getSubscription("nope"))).code).toBe(status.NOT_FOUND);
    expect((await rejection(t.mesh.client.deleteSubscription("nope"))).code).toBe(status.NOT_FOUND);
  });

  it("refuses duplicates with ALREADY_EXISTS and a topic with subscriptions with FAILED_PRECONDITION", async () => {
    expect((await rejection(t.mesh.client.createTopic("errors"))).code).toBe(status.ALREADY_EXISTS);
    expect((await rejection(t.mesh.client.createSubscription("errors.sub", "errors"))).code).toBe(
      status.ALREADY_EXISTS,
    );
    const error = await rejection(t.mesh.client.deleteTopic("errors"));
    expect(error).toEqual({
      code: status.FAILED_PRECONDITION,
      details: "topic errors still has 1 subscription(s); delete them first",
    });
  });

  it("refuses an ack deadline out of range", async () => {
    for (const seconds of [0, -5]) {
      const error = await rejection(
        t.mesh.client.createSubscription("errors.bad", "errors", { ackDeadlineSeconds: seconds }),
      );
      expect(error).toEqual({
        code: status.INVALID_ARGUMENT,
        details: `ack_deadline must be a whole number of seconds from 1 to 3600, got ${seconds}s`,
      });
    }
    const tooLong = await rejection(
      t.mesh.client.createSubscription("errors.long", "errors", { ackDeadlineSeconds: 7200 }),
    );
    expect(tooLong.code).toBe(status.INVALID_ARGUMENT);
    expect(tooLong.details).toMatch(/ack_deadline must be a whole number of seconds from 1 to 3600/);
  });

  it("lists topics and subscriptions page by page", async () => {
    for (const name of ["page.a", "page.b", "page.c"]) await t.mesh.client.createTopic(name);
    const first = await t.mesh.client.listTopics(2);
    expect(first.topics).toHaveLength(2);
    expect(first.nextPageToken).not.toBe("");
    const rest = await t.mesh.client.listTopics(1000, first.nextPageToken);
    const all = [...first.topics, ...rest.topics].map((t) => t.name);
    expect(all).toEqual([...all].sort());
    expect(all).toEqual(expect.arrayContaining(["errors", "page.a", "page.b", "page.c"]));
    expect(rest.nextPageToken).toBe("");
    const subs = await t.mesh.client.listSubscriptions("errors");
    expect(subs.subscriptions.map((s) => s.name)).toContain("errors.sub");
  });
});

describe("publish", () => {
  it("refuses an empty batch, a missing source, bad attributes and an oversized event", async () => {
    const cases: [Parameters<typeof t.mesh.client.publish>[1], RegExp][] = [
      [[], /at least one event/],
      // The SDK fills in a missing source; an empty one reaches the broker.
      [[{ type: "t", source: "" }], /events\[0\]\.source is required/],
      [[{ source: "s" }], /events\[0\]\.type is required when the event has no data/],
      [[{ source: "s", type: "t", attributes: { "Bad Key": "v" } }], /attributes key "Bad Key" is not valid/],
      [
        [
          { source: "s", type: "t" },
          { source: "s", type: "t", id: "x".repeat(300) },
        ],
        /events\[1\]\.id is 300 characters long/,
      ],
      [
        [
          {
            source: "s",
            type: "t",
            data: { typeUrl: "type.googleapis.com/x.Y", value: Buffer.alloc(1024 * 1024 + 1) },
          },
        ],
        /events\[0\] is 1\.00 MiB; an event may be at most 1\.00 MiB/,
      ],
    ];
    for (const [events, message] of cases) {
      const error = await rejection(t.mesh.client.publish("errors", events));
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toMatch(message);
    }
    // Nothing of a refused batch was stored: the valid first event of the id case is not delivered.
    const probe = await StreamProbe.open(t.mesh.client, "errors.sub");
    await new Promise((r) => setTimeout(r, 500));
    expect(probe.deliveries).toHaveLength(0);
    await probe.close();
  });

  it("refuses a batch of more than 1000 events", async () => {
    const events = Array.from({ length: 1001 }, () => ({ source: "s", type: "t" }));
    const error = await rejection(t.mesh.client.publish("errors", events));
    expect(error).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "a publish request holds at most 1000 events, got 1001",
    });
  });

  it("refuses an unknown topic with NOT_FOUND", async () => {
    expect(await rejection(t.mesh.client.publish("missing", [{ source: "s", type: "t" }]))).toEqual({
      code: status.NOT_FOUND,
      details: "topic missing does not exist",
    });
  });

  it("publishing the same source + id again is a duplicate and delivers nothing new", async () => {
    await t.mesh.client.createTopic("dedup");
    await t.mesh.client.createSubscription("dedup.sub", "dedup");
    const first = await t.mesh.client.publish("dedup", [
      { id: "same", source: "s", type: "t" },
      { id: "same", source: "s", type: "t" },
      { id: "same", source: "other", type: "t" },
    ]);
    expect(first.map((r) => r.duplicate)).toEqual([false, true, false]);
    const second = await t.mesh.client.publish("dedup", [{ id: "same", source: "s", type: "t" }]);
    expect(second).toEqual([{ id: "same", duplicate: true }]);
    const probe = await StreamProbe.open(t.mesh.client, "dedup.sub");
    await probe.waitForDeliveries(2);
    await new Promise((r) => setTimeout(r, 500));
    expect(probe.deliveries.map((d) => d.event?.source).sort()).toEqual(["other", "s"]);
    await probe.close();
  });
});

describe("subscribe", () => {
  it("refuses an unknown subscription with NOT_FOUND", async () => {
    const probe = StreamProbe.raw(t.mesh.client);
    probe.send({
      request: {
        $case: "open",
        value: { subscription: "ghost", consumer: "", maxOutstandingMessages: 0, maxOutstandingBytes: 0 },
      },
    });
    expect(await probe.ended).toEqual({
      code: status.NOT_FOUND,
      details: "subscription ghost does not exist",
    });
  });

  it("refuses a stream whose first message is not open", async () => {
    const probe = StreamProbe.raw(t.mesh.client);
    probe.ack(["whatever"]);
    expect(await probe.ended).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "the first message must be `open`, got `ack`",
    });
  });

  it("refuses a bad subscription name and an oversized window", async () => {
    const bad = StreamProbe.raw(t.mesh.client);
    bad.send({
      request: {
        $case: "open",
        value: { subscription: "Bad Name", consumer: "", maxOutstandingMessages: 0, maxOutstandingBytes: 0 },
      },
    });
    const badEnd = await bad.ended;
    expect(badEnd.code).toBe(status.INVALID_ARGUMENT);
    expect(badEnd.details).toMatch(/subscription name "Bad Name" is not valid/);
    const big = StreamProbe.raw(t.mesh.client);
    big.send({
      request: {
        $case: "open",
        value: {
          subscription: "errors.sub",
          consumer: "",
          maxOutstandingMessages: 20_000,
          maxOutstandingBytes: 0,
        },
      },
    });
    expect(await big.ended).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "max_outstanding_messages is at most 10000, got 20000",
    });
  });

  it("refuses a second open on the same stream", async () => {
    const probe = await StreamProbe.open(t.mesh.client, "errors.sub");
    probe.send({
      request: {
        $case: "open",
        value: {
          subscription: "errors.sub",
          consumer: "",
          maxOutstandingMessages: 0,
          maxOutstandingBytes: 0,
        },
      },
    });
    expect(await probe.ended).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "the stream is already open; `open` may only be sent once",
    });
  });

  it("answers an ack for an unknown id with UNKNOWN and keeps the stream up", async () => {
    await t.mesh.client.createTopic("unknown.acks");
    await t.mesh.client.createSubscription("unknown.acks.sub", "unknown.acks");
    const probe = await StreamProbe.open(t.mesh.client, "unknown.acks.sub");
    const results = await probe.ackAndWait([
      "not-an-id",
      "00000000-0000-0000-0000-000000000000:0",
      "'; DROP TABLE x; --",
    ]);
    expect(results.map((r) => r.status)).toEqual([
      AckStatus.ACK_STATUS_UNKNOWN,
      AckStatus.ACK_STATUS_UNKNOWN,
      AckStatus.ACK_STATUS_UNKNOWN,
    ]);
    // Still up: it receives and acks an event published afterwards.
    await t.mesh.client.publish("unknown.acks", [{ id: "after", source: "s", type: "t" }]);
    const [delivery] = await probe.waitForDeliveries(1);
    const [ack] = await probe.ackAndWait([delivery?.ackId ?? ""]);
    expect(ack?.status).toBe(AckStatus.ACK_STATUS_ACKED);
    // Acking the same id again: it is already settled, which the contract calls STALE.
    const [twice] = await probe.ackAndWait([delivery?.ackId ?? ""]);
    expect(twice?.status).toBe(AckStatus.ACK_STATUS_STALE);
    await probe.close();
  });

  it("refuses a bad settle per ack id; the stream goes on and the other deliveries are not charged", async () => {
    await t.mesh.client.createTopic("refusals");
    await t.mesh.client.createSubscription("refusals.sub", "refusals");
    await t.mesh.client.publish(
      "refusals",
      ["a", "b", "c", "d", "e"].map((id) => ({ id, source: "s", type: "t" })),
    );
    const probe = await StreamProbe.open(t.mesh.client, "refusals.sub");
    const deliveries = await probe.waitForDeliveries(5);
    const [a, b, c, d, e] = deliveries.map((x) => x.ackId);
    const refused = (ackId: string | undefined, message: string) => ({
      ackId,
      status: AckStatus.ACK_STATUS_INVALID_ARGUMENT,
      message,
    });
    expect(
      await probe.settleAndWait(() => probe.nack([a ?? "", "never-issued"], "later", 86_401), 2),
    ).toEqual([
      refused(a, "nack.delay must be 0s..86400s, got 86401s"),
      { ackId: "never-issued", status: AckStatus.ACK_STATUS_UNKNOWN, message: "" },
    ]);
    expect(await probe.settleAndWait(() => probe.nack([b ?? ""], "nul\u0000inside"), 1)).toEqual([
      refused(b, "nack.reason must not contain NUL characters"),
    ]);
    expect(await probe.settleAndWait(() => probe.reject([c ?? ""], "x".repeat(5000)), 1)).toEqual([
      refused(c, "reject.reason is at most 1024 characters, got 5000"),
    ]);
    expect(await probe.settleAndWait(() => probe.extend([d ?? ""], 7200), 1)).toEqual([
      refused(d, "extend.duration must be 1s..3600s, got 7200s"),
    ]);
    const fraction = await probe.settleAndWait(
      () =>
        probe.send({
          request: {
            $case: "nack",
            value: { ackIds: [e ?? ""], reason: "", delay: { seconds: 1, nanos: 5 } },
          },
        }),
      1,
    );
    expect(fraction).toEqual([refused(e, "nack.delay must be a whole number of seconds")]);
    // Every refused delivery is still held by the stream and settles normally afterwards.
    const results = await probe.ackAndWait([a, b, c, d, e].map((id) => id ?? ""));
    expect(results.map((r) => r.status)).toEqual(Array(5).fill(AckStatus.ACK_STATUS_ACKED));
    // Nothing was charged an attempt or redelivered.
    await t.mesh.client.publish("refusals", [{ id: "after", source: "s", type: "t" }]);
    const [, , , , , after] = await probe.waitForDeliveries(6);
    expect(after?.event?.id).toBe("after");
    expect(probe.deliveries.every((x) => x.deliveryAttempt === 1)).toBe(true);
    await probe.close();
  });

  it("answers an id repeated in one ack once ACKED and then STALE", async () => {
    await t.mesh.client.createTopic("repeat.acks");
    await t.mesh.client.createSubscription("repeat.acks.sub", "repeat.acks");
    const probe = await StreamProbe.open(t.mesh.client, "repeat.acks.sub");
    await t.mesh.client.publish("repeat.acks", [{ id: "once", source: "s", type: "t" }]);
    const [delivery] = await probe.waitForDeliveries(1);
    const id = delivery?.ackId ?? "";
    expect((await probe.ackAndWait([id, id])).map((r) => [r.ackId, r.status])).toEqual([
      [id, AckStatus.ACK_STATUS_ACKED],
      [id, AckStatus.ACK_STATUS_STALE],
    ]);
    // A nack after the ack changes nothing either.
    const [late] = await probe.settleAndWait(() => probe.nack([id]), 1);
    expect(late?.status).toBe(AckStatus.ACK_STATUS_STALE);
    await probe.close();
  });
});

describe("no SQL reaches a client", () => {
  it("maps a database failure to INTERNAL with a reference, not the Postgres message", async () => {
    // Break the events table under the broker's feet: the publish fails inside Postgres.
    const postgres = (await import("postgres")).default;
    const sql = postgres(t.db.url, { max: 1, onnotice: () => {} });
    await sql`ALTER TABLE pgmesh.events ADD CONSTRAINT boom CHECK (source <> 'explode')`;
    try {
      const error = await rejection(t.mesh.client.publish("errors", [{ source: "explode", type: "t" }]));
      expect(error.code).toBe(status.INTERNAL);
      expect(error.details).toMatch(/^internal error in the broker \(ref [0-9a-f]{8}\)/);
      expectNoLeak(error.details);
    } finally {
      await sql`ALTER TABLE pgmesh.events DROP CONSTRAINT boom`;
      await sql.end();
    }
  });
});
