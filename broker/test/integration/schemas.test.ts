// Topics bound to Protobuf message types: the broker refuses payloads of other types or that do not
// decode, and the CLI publishes and shows payloads as JSON through the registered schema.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { status } from "@grpc/grpc-js";
import { Subscription, Topic } from "@pgmesh/proto/pgmesh/v1/admin";
import { Event } from "@pgmesh/proto/pgmesh/v1/event";
import postgres from "postgres";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { FROM_SOURCE } from "../support/from-source.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";

// Our own API's descriptors (buf-built) serve as a schema: pgmesh.v1.Topic is the event type here.
const descriptorsPath = fileURLToPath(new URL("../../descriptors/pgmesh.binpb", import.meta.url));
const descriptors = readFileSync(descriptorsPath);
const pgmesh = fileURLToPath(new URL("../../bin/pgmesh.js", import.meta.url));
const run = promisify(execFile);
const t = useTestBroker();

beforeAll(async () => {
  await t.mesh.client.createTopic("typed");
  await t.mesh.client.createSubscription("typed.sub", "typed");
});

const any = (typeName: string, value: Uint8Array) => ({
  typeUrl: `type.googleapis.com/${typeName}`,
  value: Buffer.from(value),
});

// The CLI test makes several CLI calls, each a Node process compiling the sources with tsx.
describe("topic schemas", { timeout: 120_000 }, () => {
  it("refuses descriptors that do not hold the named types", async () => {
    const missing = await rejection(t.mesh.client.setTopicSchema("typed", descriptors, ["shop.v1.Nope"]));
    expect(missing).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'message type "shop.v1.Nope" is not in the file_descriptor_set',
    });
    const garbage = await rejection(
      t.mesh.client.setTopicSchema("typed", Buffer.from("not descriptors"), ["a.B"]),
    );
    expect(garbage.code).toBe(status.INVALID_ARGUMENT);
    expect(garbage.details).toMatch(/^file_descriptor_set is not a usable FileDescriptorSet/);
  });

  it("accepts payloads of the bound type and refuses other types, undecodable bytes and missing data", async () => {
    const bound = await t.mesh.client.setTopicSchema("typed", descriptors, ["pgmesh.v1.Topic"]);
    expect(bound?.messageTypes).toEqual(["pgmesh.v1.Topic"]);
    const good = Topic.encode({ name: "ok", createTime: undefined, retention: undefined }).finish();
    expect(
      await t.mesh.client.publish("typed", [{ id: "good", source: "s", data: any("pgmesh.v1.Topic", good) }]),
    ).toEqual([{ id: "good", duplicate: false }]);
    const cases: [Parameters<typeof t.mesh.client.publish>[1], string][] = [
      [
        [
          {
            source: "s",
            data: any("pgmesh.v1.Subscription", Subscription.encode(Subscription.fromPartial({})).finish()),
          },
        ],
        "events[0].data is pgmesh.v1.Subscription; the topic takes pgmesh.v1.Topic",
      ],
      [[{ source: "s", type: "t" }], "events[0].data has no data; the topic takes pgmesh.v1.Topic"],
    ];
    for (const [events, message] of cases) {
      expect(await rejection(t.mesh.client.publish("typed", events))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: message,
      });
    }
    const broken = await rejection(
      t.mesh.client.publish("typed", [
        { source: "s", data: any("pgmesh.v1.Topic", Buffer.from([0x0a, 0x05, 0x61])) },
      ]),
    );
    expect(broken.code).toBe(status.INVALID_ARGUMENT);
    expect(broken.details).toMatch(/^events\[0\]\.data does not decode as pgmesh\.v1\.Topic/);
    // Nothing of the refused batches was stored.
    const probe = await StreamProbe.open(t.mesh.client, "typed.sub");
    const [delivery] = await probe.waitForDeliveries(1);
    expect(delivery?.event?.id).toBe("good");
    await probe.ackAndWait([delivery?.ackId ?? ""]);
    await probe.close();
  });

  it("lets the CLI publish JSON as the bound type and show payloads as JSON", async () => {
    const cli = async (...args: string[]) =>
      (await run(process.execPath, [...FROM_SOURCE, pgmesh, "-a", t.mesh.address, ...args])).stdout;
    expect(await cli("topics", "schema", "get", "typed")).toBe("pgmesh.v1.Topic\n");
    await cli(
      "publish",
      "typed",
      '{"id":"from-cli","data":{"name":"via json","createTime":"2026-01-01T00:00:00Z"}}',
    );
    const tailed = JSON.parse(await cli("tail", "typed.sub", "--max", "1"));
    expect(tailed).toMatchObject({
      id: "from-cli",
      type: "pgmesh.v1.Topic",
      data: { name: "via json", createTime: "2026-01-01T00:00:00Z" },
    });
    await expect(
      run(process.execPath, [
        ...FROM_SOURCE,
        pgmesh,
        "-a",
        t.mesh.address,
        "publish",
        "typed",
        '{"data":{"nmae":"typo"}}',
      ]),
    ).rejects.toMatchObject({
      stderr: expect.stringContaining("data does not fit pgmesh.v1.Topic"),
    });
    // Bad JSON gets the same clear message with a schema as without.
    await expect(
      run(process.execPath, [...FROM_SOURCE, pgmesh, "-a", t.mesh.address, "publish", "typed", "{nope"]),
    ).rejects.toMatchObject({
      stderr: expect.stringContaining("error: the event is not valid JSON"),
    });
    expect(await cli("topics", "schema", "clear", "typed")).toBe("topic typed takes any payload\n");
    expect(await t.mesh.client.publish("typed", [{ source: "s", type: "anything" }])).toHaveLength(1);
  });

  it("checks outbox rows against the topic's schema and sets aside the ones that fail, with the reason", async () => {
    await t.mesh.client.createTopic("typed.outbox");
    await t.mesh.client.createSubscription("typed.outbox.sub", "typed.outbox");
    await t.mesh.client.setTopicSchema("typed.outbox", descriptors, ["pgmesh.v1.Topic"]);
    const event = (id: string, data: ReturnType<typeof any> | undefined) =>
      Buffer.from(Event.encode(Event.fromPartial({ id, source: "app", type: "t", data })).finish());
    const sql = postgres(t.db.url, { max: 1, onnotice: () => {} });
    try {
      await sql.begin(async (tx) => {
        await tx`SELECT pgmesh.outbox_publish('typed.outbox', ${event("wrong-type", any("pgmesh.v1.Subscription", Buffer.alloc(0)))})`;
        await tx`SELECT pgmesh.outbox_publish('typed.outbox', ${event("no-data", undefined)})`;
        await tx`SELECT pgmesh.outbox_publish('typed.outbox', ${event("fits", any("pgmesh.v1.Topic", Topic.encode(Topic.fromPartial({ name: "x" })).finish()))})`;
      });
      const probe = await StreamProbe.open(t.mesh.client, "typed.outbox.sub");
      const [delivery] = await probe.waitForDeliveries(1);
      expect(delivery?.event?.id).toBe("fits");
      await sleep(300);
      expect(probe.deliveries).toHaveLength(1);
      expect(await sql`SELECT topic, error FROM pgmesh.outbox_failures ORDER BY seq`).toEqual([
        {
          topic: "typed.outbox",
          error: "events[0].data is pgmesh.v1.Subscription; the topic takes pgmesh.v1.Topic",
        },
        { topic: "typed.outbox", error: "events[0].data has no data; the topic takes pgmesh.v1.Topic" },
      ]);
      await probe.ackAndWait([delivery?.ackId ?? ""]);
      await probe.close();
    } finally {
      await sql.end();
    }
  });
});
