// The SDK's batching publisher against a real broker: batches by count, bytes and delay, ordering
// keys kept in order with one batch in flight per key, and a key paused after a failed publish.

import { Topic } from "@pgmesh/proto/pgmesh/v1/admin";
import { defineEvent, PublishPausedError } from "@pgmesh/sdk";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../../broker/test/support/broker.ts";
import { until } from "../../broker/test/support/until.ts";

const t = useTestBroker();
const batches: number[] = [];

beforeAll(() => {
  // Watches the requests the batches become (the real publish underneath).
  const publish = t.mesh.client.publish.bind(t.mesh.client);
  t.mesh.client.publish = (topic, events, settings) => {
    batches.push(events.length);
    return publish(topic, events, settings);
  };
});

const name = (n: number) => Topic.fromPartial({ name: `e${n}` });

describe("batch publisher", () => {
  it("sends a batch when it has maxMessages events, and the rest after maxDelayMs", async () => {
    await t.mesh.client.createTopic("batch.count");
    const Ev = defineEvent("batch.count", "pgmesh.v1.Topic", Topic);
    const publisher = t.mesh.client.batchPublisher({ maxMessages: 5, maxDelayMs: 300 });
    batches.length = 0;
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => publisher.publishEvent(Ev, name(i))),
    );
    expect(batches).toEqual([5, 5, 2]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(new Set(results.map((r) => r.id)).size).toBe(12);
    expect(results.every((r) => !r.duplicate)).toBe(true);
  });

  it("starts a new batch before one would pass maxBytes", async () => {
    await t.mesh.client.createTopic("batch.bytes");
    const publisher = t.mesh.client.batchPublisher({ maxMessages: 100, maxBytes: 2500, maxDelayMs: 50 });
    batches.length = 0;
    const kilobyte = new Uint8Array(1000);
    await Promise.all(
      Array.from({ length: 5 }, () =>
        publisher.publish("batch.bytes", {
          type: "blob",
          data: { typeUrl: "t/blob", value: Buffer.from(kilobyte) },
        }),
      ),
    );
    expect(batches).toEqual([2, 2, 1]);
  });

  it("keeps each ordering key in publish order, one batch in flight per key", async () => {
    await t.mesh.client.createTopic("batch.ordered");
    await t.mesh.client.createSubscription("batch.ordered.sub", "batch.ordered", { ordering: true });
    const Ev = defineEvent("batch.ordered", "pgmesh.v1.Topic", Topic);
    const publisher = t.mesh.client.batchPublisher({ maxMessages: 3, maxDelayMs: 5 });
    const published = Array.from({ length: 20 }, (_, i) =>
      publisher.publishEvent(Ev, name(i), { orderingKey: i % 2 ? "odd" : "even" }),
    );
    await Promise.all(published);
    const seen: Record<string, string[]> = { odd: [], even: [] };
    const sub = t.mesh.client.subscribe(
      "batch.ordered.sub",
      Ev,
      (event) => {
        seen[event.orderingKey]?.push(event.data.name);
      },
      { concurrency: 4 },
    );
    await until(() => (seen.odd?.length ?? 0) + (seen.even?.length ?? 0) === 20, "all 20 events");
    await sub.close();
    const expected = (parity: number) =>
      Array.from({ length: 20 }, (_, i) => i)
        .filter((i) => i % 2 === parity)
        .map((i) => `e${i}`);
    expect(seen.even).toEqual(expected(0));
    expect(seen.odd).toEqual(expected(1));
  });

  it("pauses an ordering key after a failed publish until resumePublishing", async () => {
    const publisher = t.mesh.client.batchPublisher({ maxDelayMs: 5 });
    const failed = publisher.publish("batch.missing", { type: "a", orderingKey: "k" });
    await expect(failed).rejects.toMatchObject({ code: 5 });
    // The same key is paused, even once the topic exists; another key is not.
    await t.mesh.client.createTopic("batch.missing");
    await expect(publisher.publish("batch.missing", { type: "b", orderingKey: "k" })).rejects.toBeInstanceOf(
      PublishPausedError,
    );
    await expect(
      publisher.publish("batch.missing", { type: "c", orderingKey: "other" }),
    ).resolves.toMatchObject({
      duplicate: false,
    });
    publisher.resumePublishing("k");
    await expect(publisher.publish("batch.missing", { type: "d", orderingKey: "k" })).resolves.toMatchObject({
      duplicate: false,
    });
    await publisher.flush();
  });
});
