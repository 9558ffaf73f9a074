// The SDK against a real broker and Postgres: typed publish and subscribe, handler outcomes,
// concurrency, lease extension, reconnects and draining.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Subscription, Topic } from "@pgmesh/proto/pgmesh/v1/admin";
import { defineEvent, on, reject, retryAfter } from "@pgmesh/sdk";
import { beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, useTestBroker } from "../../broker/test/support/broker.ts";
import { createTestDatabase } from "../../broker/test/support/database.ts";
import { freePort } from "../../broker/test/support/free-port.ts";
import { FROM_SOURCE } from "../../broker/test/support/from-source.ts";
import { sleep } from "../../broker/test/support/stream-probe.ts";
import { until } from "../../broker/test/support/until.ts";

// Any generated message works as a payload; pgmesh.v1.Topic is at hand.
const noBackoff = { initialBackoffSeconds: 0, maxBackoffSeconds: 0, jitter: 0 };
const t = useTestBroker();

beforeAll(async () => {});

async function setUp(topic: string, policy: Parameters<typeof t.mesh.client.createSubscription>[2] = {}) {
  await t.mesh.client.createTopic(topic);
  await t.mesh.client.createSubscription(`${topic}.sub`, topic, policy);
  return defineEvent(topic, "pgmesh.v1.Topic", Topic);
}

describe("typed publish and subscribe", () => {
  it("round-trips a typed message with its envelope", async () => {
    const Created = await setUp("sdk.typed");
    const received: { name: string; attempt: number; subject: string; type: string }[] = [];
    const sub = t.mesh.client.subscribe("sdk.typed.sub", Created, (event) => {
      received.push({
        name: event.data.name,
        attempt: event.attempt,
        subject: event.subject,
        type: event.type,
      });
    });
    await sub.ready;
    const result = await t.mesh.client.publishEvent(
      Created,
      { name: "hello", createTime: undefined, retention: undefined },
      { subject: "s/1" },
    );
    expect(result.duplicate).toBe(false);
    await until(() => received.length === 1, "the event");
    expect(received).toEqual([{ name: "hello", attempt: 1, subject: "s/1", type: "pgmesh.v1.Topic" }]);
    await sub.close();
    await until(
      async () => (await t.mesh.client.subscriptionStats("sdk.typed.sub")).inFlight === 0,
      "the ack",
    );
    expect(await t.mesh.client.subscriptionStats("sdk.typed.sub")).toMatchObject({ backlog: 0, inFlight: 0 });
  });
});

describe("several event types on one topic", () => {
  it("runs each type's handler; an event of a type without one is dead-lettered and reported", async () => {
    const TopicEv = await setUp("sdk.multi");
    const SubscriptionEv = defineEvent("sdk.multi", "pgmesh.v1.Subscription", Subscription);
    const Stranger = defineEvent("sdk.multi", "pgmesh.v1.Stranger", Topic);
    const seen: string[] = [];
    const errors: unknown[] = [];
    const sub = t.mesh.client.subscribe(
      "sdk.multi.sub",
      [
        on(TopicEv, (event) => {
          seen.push(`topic ${event.data.name}`);
        }),
        on(SubscriptionEv, (event) => {
          seen.push(`subscription ${event.data.topic}`);
        }),
      ],
      { onError: (error) => errors.push(error) },
    );
    await sub.ready;
    await t.mesh.client.publishEvent(TopicEv, Topic.fromPartial({ name: "t1" }));
    await t.mesh.client.publishEvent(SubscriptionEv, Subscription.fromPartial({ topic: "s1" }));
    await t.mesh.client.publishEvent(Stranger, Topic.fromPartial({ name: "x" }));
    // JSON data, as the CLI publishes it: the payload is a google.protobuf.Value, the type says what it is.
    await t.mesh.client.publish("sdk.multi", [
      {
        type: "shop.OrderPlaced",
        data: { typeUrl: "type.googleapis.com/google.protobuf.Value", value: Buffer.alloc(0) },
      },
    ]);
    await until(
      async () => (await t.mesh.client.subscriptionStats("sdk.multi.sub")).deadLetters === 2,
      "the dead letters",
    );
    expect(seen.sort()).toEqual(["subscription s1", "topic t1"]);
    const handles = "(this subscriber handles pgmesh.v1.Topic, pgmesh.v1.Subscription)";
    const reasons = [
      `no handler for pgmesh.v1.Stranger ${handles}`,
      `no handler for shop.OrderPlaced (its payload a google.protobuf.Value) ${handles}`,
    ];
    expect(errors.map((e) => (e as Error).message).sort()).toEqual(reasons);
    const dead = await t.mesh.client.listDeadLetters({ subscription: "sdk.multi.sub" });
    expect(dead.deadLetters.map((d) => d.lastError).sort()).toEqual(reasons);
    await sub.close();
  });

  it("gives an event of a type without a handler to `unhandled` when there is one", async () => {
    const TopicEv = await setUp("sdk.unhandled");
    const Other = defineEvent("sdk.unhandled", "pgmesh.v1.Other", Topic);
    const raw: string[] = [];
    const sub = t.mesh.client.subscribe("sdk.unhandled.sub", [on(TopicEv, () => {})], {
      unhandled: (event) => {
        raw.push(`${event.type} ${event.data.length}`);
      },
    });
    await sub.ready;
    await t.mesh.client.publishEvent(Other, Topic.fromPartial({ name: "abc" }));
    await until(() => raw.length === 1, "the unhandled event");
    expect(raw).toEqual(["pgmesh.v1.Other 5"]);
    await sub.close();
    expect(await t.mesh.client.subscriptionStats("sdk.unhandled.sub")).toMatchObject({ deadLetters: 0 });
  });
});

describe("handler outcomes", () => {
  it("acks on resolve, retries on throw, dead-letters on reject, and waits on retryAfter", async () => {
    const Work = await setUp("sdk.outcomes", { retryPolicy: noBackoff });
    const seen: string[] = [];
    const firstSeenAt = new Map<string, number>();
    const sub = t.mesh.client.subscribe("sdk.outcomes.sub", Work, async (event) => {
      const name = event.data.name;
      seen.push(`${name}#${event.attempt}`);
      if (!firstSeenAt.has(name)) firstSeenAt.set(name, Date.now());
      if (name === "throws" && event.attempt === 1) throw new Error("transient");
      if (name === "poison") throw reject("cannot handle");
      if (name === "later" && event.attempt === 1) throw retryAfter(2);
    });
    await sub.ready;
    await t.mesh.client.publishEvents(Work, [
      { message: { name: "fine", createTime: undefined, retention: undefined } },
      { message: { name: "throws", createTime: undefined, retention: undefined } },
      { message: { name: "poison", createTime: undefined, retention: undefined } },
      { message: { name: "later", createTime: undefined, retention: undefined } },
    ]);
    await until(() => seen.includes("later#2"), "the delayed retry", 10_000);
    expect(Date.now() - (firstSeenAt.get("later") ?? 0)).toBeGreaterThanOrEqual(1900);
    expect(seen).toEqual(
      expect.arrayContaining(["fine#1", "throws#1", "throws#2", "poison#1", "later#1", "later#2"]),
    );
    expect(seen.filter((s) => s.startsWith("poison"))).toEqual(["poison#1"]);
    const dead = await t.mesh.client.listDeadLetters({ subscription: "sdk.outcomes.sub" });
    expect(dead.deadLetters.map((d) => [d.lastError, d.attempts])).toEqual([["cannot handle", 1]]);
    await sub.close();
  });
});

describe("one event never stops a subscriber", () => {
  it("falls back to a nack when the broker refuses a reject, reports it, and keeps consuming", async () => {
    const Work = await setUp("sdk.refused", { deadLettering: false, retryPolicy: noBackoff });
    const seen: string[] = [];
    const errors: unknown[] = [];
    const sub = t.mesh.client.subscribe(
      "sdk.refused.sub",
      Work,
      (event) => {
        seen.push(`${event.data.name}#${event.attempt}`);
        if (event.data.name === "poison" && event.attempt === 1) throw reject("cannot handle");
      },
      { onError: (error) => errors.push(error) },
    );
    await sub.ready;
    await t.mesh.client.publishEvents(Work, [
      { message: { name: "poison", createTime: undefined, retention: undefined } },
    ]);
    await until(() => seen.includes("poison#2"), "the redelivery after the fallback nack");
    await t.mesh.client.publishEvents(Work, [
      { message: { name: "next", createTime: undefined, retention: undefined } },
    ]);
    await until(() => seen.includes("next#1"), "an event published afterwards");
    expect(errors).toEqual([
      expect.objectContaining({
        name: "SettleRefused",
        settle: "reject",
        fallback: "nacked",
        reason:
          "subscription sdk.refused.sub has dead lettering off, so there is nowhere to reject to; nack instead",
      }),
    ]);
    await sub.close();
    await expect(sub.done).resolves.toBeUndefined();
  });

  it("asks only for what the broker takes: reasons without NUL and capped, delays capped", async () => {
    const Work = await setUp("sdk.capped", { retryPolicy: noBackoff });
    const errors: unknown[] = [];
    const seen: string[] = [];
    const sub = t.mesh.client.subscribe(
      "sdk.capped.sub",
      Work,
      (event) => {
        seen.push(event.data.name);
        if (event.data.name === "nul") throw reject("bad\u0000byte");
        if (event.data.name === "long") throw reject("x".repeat(5000));
        if (event.data.name === "far") throw retryAfter(10 * 24 * 60 * 60);
      },
      { onError: (error) => errors.push(error), concurrency: 50_000 },
    );
    await sub.ready;
    await t.mesh.client.publishEvents(Work, [
      { message: { name: "nul", createTime: undefined, retention: undefined } },
      { message: { name: "long", createTime: undefined, retention: undefined } },
      { message: { name: "far", createTime: undefined, retention: undefined } },
    ]);
    await until(
      async () =>
        (await t.mesh.client.listDeadLetters({ subscription: "sdk.capped.sub" })).deadLetters.length === 2,
      "two dead letters",
    );
    const dead = await t.mesh.client.listDeadLetters({ subscription: "sdk.capped.sub" });
    expect(dead.deadLetters.map((d) => d.lastError).sort()).toEqual(["badbyte", "x".repeat(1024)]);
    await until(
      async () => (await t.mesh.client.subscriptionStats("sdk.capped.sub")).inFlight === 0,
      "the delayed nack",
    );
    expect(seen.sort()).toEqual(["far", "long", "nul"]);
    expect(errors).toEqual([]);
    await sub.close();
  });
});

describe("flow", () => {
  it("never runs more handlers at once than its concurrency", async () => {
    const Job = await setUp("sdk.concurrency");
    await t.mesh.client.publishEvents(
      Job,
      Array.from({ length: 12 }, (_, i) => ({
        message: { name: `j${i}`, createTime: undefined, retention: undefined },
      })),
    );
    let running = 0;
    let peak = 0;
    let done = 0;
    const sub = t.mesh.client.subscribe(
      "sdk.concurrency.sub",
      Job,
      async () => {
        running++;
        peak = Math.max(peak, running);
        await sleep(150);
        running--;
        done++;
      },
      { concurrency: 3 },
    );
    await until(() => done === 12, "all 12 handlers");
    expect(peak).toBe(3);
    await sub.close();
  });

  it("extends the lease of a handler slower than the ack deadline, so it is not redelivered", async () => {
    const Slow = await setUp("sdk.slow", { ackDeadlineSeconds: 2, retryPolicy: noBackoff });
    const attempts: number[] = [];
    let finished = false;
    const sub = t.mesh.client.subscribe("sdk.slow.sub", Slow, async (event) => {
      attempts.push(event.attempt);
      await sleep(5000);
      finished = true;
    });
    await sub.ready;
    await t.mesh.client.publishEvent(Slow, { name: "slow", createTime: undefined, retention: undefined });
    await until(() => finished, "the slow handler", 10_000);
    await sub.close();
    expect(attempts).toEqual([1]);
    expect(await t.mesh.client.subscriptionStats("sdk.slow.sub")).toMatchObject({ backlog: 0, inFlight: 0 });
  });

  it("holds up to maxOutstandingMessages deliveries while running only `concurrency` handlers", async () => {
    const Held = await setUp("sdk.window");
    await t.mesh.client.publishEvents(
      Held,
      Array.from({ length: 10 }, (_, i) => ({
        message: { name: `w${i}`, createTime: undefined, retention: undefined },
      })),
    );
    let running = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const sub = t.mesh.client.subscribe(
      "sdk.window.sub",
      Held,
      async () => {
        running++;
        await gate;
      },
      { concurrency: 2, maxOutstandingMessages: 6 },
    );
    await until(
      async () => (await t.mesh.client.subscriptionStats("sdk.window.sub")).inFlight === 6,
      "six deliveries held",
    );
    expect(running).toBe(2);
    expect(await t.mesh.client.subscriptionStats("sdk.window.sub")).toMatchObject({
      backlog: 4,
      inFlight: 6,
    });
    release();
    await until(
      async () => (await t.mesh.client.subscriptionStats("sdk.window.sub")).backlog === 0,
      "the rest",
    );
    await sub.close();
  });

  it("holds deliveries up to maxOutstandingBytes of payload", async () => {
    const Big = await setUp("sdk.bytes");
    await t.mesh.client.publishEvents(
      Big,
      Array.from({ length: 6 }, (_, i) => ({
        message: { name: `${i}`.padEnd(1000, "x"), createTime: undefined, retention: undefined },
      })),
    );
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const sub = t.mesh.client.subscribe("sdk.bytes.sub", Big, () => gate, {
      concurrency: 10,
      maxOutstandingBytes: 2500,
    });
    // About 1 kB each: the third passes 2,500 bytes, and the broker sends no fourth.
    await until(
      async () => (await t.mesh.client.subscriptionStats("sdk.bytes.sub")).inFlight === 3,
      "three deliveries held",
    );
    await sleep(300);
    expect(await t.mesh.client.subscriptionStats("sdk.bytes.sub")).toMatchObject({ backlog: 3, inFlight: 3 });
    release();
    await until(
      async () => (await t.mesh.client.subscriptionStats("sdk.bytes.sub")).backlog === 0,
      "the rest",
    );
    await sub.close();
  });

  it("stops extending a lease at maxExtensionMs, so the broker redelivers the event", async () => {
    const Stuck = await setUp("sdk.maxext", { ackDeadlineSeconds: 1, retryPolicy: noBackoff });
    const attempts: number[] = [];
    const sub = t.mesh.client.subscribe(
      "sdk.maxext.sub",
      Stuck,
      async (event) => {
        attempts.push(event.attempt);
        if (event.attempt === 1) await sleep(4000);
      },
      { maxExtensionMs: 500 },
    );
    await sub.ready;
    await t.mesh.client.publishEvent(Stuck, { name: "s", createTime: undefined, retention: undefined });
    await until(() => attempts.includes(2), "the redelivery", 8000);
    await sub.close(100);
  });

  it("gives up on a handler after handlerTimeoutMs: the event is nacked and retried", async () => {
    const Slow = await setUp("sdk.timeout", { retryPolicy: noBackoff });
    const attempts: number[] = [];
    const sub = t.mesh.client.subscribe(
      "sdk.timeout.sub",
      Slow,
      async (event) => {
        attempts.push(event.attempt);
        if (event.attempt === 1) await sleep(3000);
      },
      { handlerTimeoutMs: 200 },
    );
    await sub.ready;
    const started = Date.now();
    await t.mesh.client.publishEvent(Slow, { name: "t", createTime: undefined, retention: undefined });
    await until(() => attempts.includes(2), "the retry");
    expect(Date.now() - started).toBeLessThan(2500);
    await sub.close(100);
    await until(
      async () => (await t.mesh.client.subscriptionStats("sdk.timeout.sub")).inFlight === 0,
      "the ack",
    );
  });

  it("close() lets a running handler finish and ack before it returns", async () => {
    const Drain = await setUp("sdk.drain");
    let started = false;
    let finished = false;
    const sub = t.mesh.client.subscribe("sdk.drain.sub", Drain, async () => {
      started = true;
      await sleep(500);
      finished = true;
    });
    await sub.ready;
    await t.mesh.client.publishEvent(Drain, { name: "d", createTime: undefined, retention: undefined });
    await until(() => started, "the handler to start");
    await sub.close();
    expect(finished).toBe(true);
    await until(
      async () => (await t.mesh.client.subscriptionStats("sdk.drain.sub")).inFlight === 0,
      "the ack",
    );
    expect(await t.mesh.client.subscriptionStats("sdk.drain.sub")).toMatchObject({ backlog: 0, inFlight: 0 });
  });
});

describe("reconnect", () => {
  it("reconnects across a broker restart with no event lost", async () => {
    // A broker of its own on a fixed port, so that the restarted one is at the same address.
    const ownDb = await createTestDatabase();
    const port = await freePort();
    const env = { PGMESH_GRPC_ADDRESS: `127.0.0.1:${port}` };
    let broker = await startTestBroker(ownDb.url, env);
    await broker.client.createTopic("sdk.restart");
    await broker.client.createSubscription("sdk.restart.sub", "sdk.restart", { retryPolicy: noBackoff });
    const Ev = defineEvent("sdk.restart", "pgmesh.v1.Topic", Topic);
    const client = new (await import("@pgmesh/sdk")).PgmeshClient(`127.0.0.1:${port}`);
    const got = new Set<string>();
    const sub = client.subscribe(
      "sdk.restart.sub",
      Ev,
      (event) => {
        got.add(event.data.name);
      },
      // The default reconnect settings: the point is how fast they find the restarted broker.
    );
    await sub.ready;
    await broker.client.publishEvents(
      Ev,
      [0, 1, 2, 3, 4].map((i) => ({
        message: { name: `before-${i}`, createTime: undefined, retention: undefined },
      })),
    );
    await until(() => got.size === 5, "the first five");
    await broker.stop();
    // Down long enough for the backoffs (the SDK's and gRPC's channel's) to reach their caps.
    await sleep(6000);
    // The test's own publishes are not retried by the SDK (its backoff grows to 5 s): each attempt
    // fails fast and `until` tries again every 50 ms, so the clock below measures the subscriber.
    // The test's own publishes are not retried by the SDK (that backoff grows to 5 s): each attempt
    // fails fast and `until` tries again every 50 ms, so the clock below measures the subscriber.
    broker = await startTestBroker(ownDb.url, env, { publishRetry: false });
    const restartedAt = Date.now();
    // grpc-js shares connections per address: a fresh client may first see the old one's backoff.
    const after = [0, 1, 2, 3, 4].map((i) => ({
      message: { name: `after-${i}`, createTime: undefined, retention: undefined },
    }));
    const restarted = broker;
    await until(
      () =>
        restarted.client.publishEvents(Ev, after).then(
          () => true,
          () => false,
        ),
      "the restarted broker",
    );
    await until(() => got.size === 10, "the five published after the restart", 15_000);
    // Within a second or two of the broker being back (gRPC alone backs off to 120 s): the stream
    // waits for the channel, whose reconnect backoff is capped at 1 s.
    expect(Date.now() - restartedAt).toBeLessThan(2500);
    await sub.close();
    client.close();
    await broker.stop();
    await ownDb.drop();
  });

  it("reports while no broker answers, and closes at once: the stream waiting for one is cut, not drained", async () => {
    const client = new (await import("@pgmesh/sdk")).PgmeshClient(`127.0.0.1:${await freePort()}`);
    const Ev = defineEvent("nowhere", "pgmesh.v1.Topic", Topic);
    const errors: unknown[] = [];
    const sub = client.subscribe("no.broker.sub", Ev, () => {}, { onError: (error) => errors.push(error) });
    // The waiting stream fails nothing, but onError hears that it waits, about once a second.
    await until(() => errors.length > 0, "a report that the stream waits for the broker", 3000);
    expect(errors[0]).toMatchObject({
      code: 14,
      details: expect.stringMatching(/waited 1\.\d s for the broker/),
    });
    const started = Date.now();
    await sub.close();
    await sub.done;
    // Well under closeTimeoutMs (10 s), which a drain of the waiting stream would run into.
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(sub.ready).rejects.toThrow("closed before its stream opened");
    client.close();
  });

  it("stops with the broker's error when the subscription does not exist; `ready` rejects with it", async () => {
    const Ev = defineEvent("nowhere", "pgmesh.v1.Topic", Topic);
    const sub = t.mesh.client.subscribe("no.such.sub", Ev, () => {});
    const notFound = { code: 5, details: "subscription no.such.sub does not exist" };
    await expect(sub.ready).rejects.toMatchObject(notFound);
    await expect(sub.done).rejects.toMatchObject(notFound);
  });
});

describe("close", () => {
  it("returns within its timeout when a handler hangs; the event goes back to the broker", async () => {
    const Hang = await setUp("sdk.hang", { retryPolicy: noBackoff });
    const attempts: number[] = [];
    const sub = t.mesh.client.subscribe("sdk.hang.sub", Hang, async (event) => {
      attempts.push(event.attempt);
      if (event.attempt === 1) await new Promise(() => {});
    });
    await sub.ready;
    await t.mesh.client.publishEvent(Hang, { name: "h", createTime: undefined, retention: undefined });
    await until(() => attempts.length === 1, "the handler to start");
    const started = Date.now();
    await sub.close(300);
    expect(Date.now() - started).toBeLessThan(1000);
    const again = t.mesh.client.subscribe("sdk.hang.sub", Hang, async (event) => {
      attempts.push(event.attempt);
    });
    await until(() => attempts.length === 2, "the redelivery");
    expect(attempts).toEqual([1, 2]);
    await again.close();
  });

  it("leaves nothing behind: the process exits as soon as the subscriber and client are closed", async () => {
    await setUp("sdk.exit");
    const script = fileURLToPath(new URL("fixtures/lifecycle/exit-after-close.ts", import.meta.url));
    const child = spawn(
      process.execPath,
      [...FROM_SOURCE, script, t.mesh.address, "sdk.exit.sub", "sdk.exit"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let closedAt = 0;
    child.stdout.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("closed")) closedAt = Date.now();
    });
    const code = await new Promise((resolve) => child.on("exit", resolve));
    expect(code).toBe(0);
    expect(closedAt).toBeGreaterThan(0);
    expect(Date.now() - closedAt).toBeLessThan(500);
  });
});
