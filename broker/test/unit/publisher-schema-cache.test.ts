// The publisher's cache of compiled topic schemas: loaded once per topic and kept until a change
// is announced (forgetSchema, which the NOTIFY of every schema change calls), so a publish costs
// no schema query; a load that raced with a change is used once and not kept.
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { TopicSchema } from "../../src/delivery/model.ts";
import type { DeliveryObserver } from "../../src/delivery/observer.ts";
import type { EventStore } from "../../src/delivery/ports.ts";
import { Publisher } from "../../src/delivery/publishing.ts";

const descriptors = readFileSync(new URL("../../descriptors/pgmesh.binpb", import.meta.url));
const stored: TopicSchema = {
  fileDescriptorSet: descriptors,
  messageTypes: ["pgmesh.v1.Topic"],
  updatedAt: new Date(0),
};

/** A publisher whose schema loads are counted and, when `held`, resolved by the test. */
function publisherWith(held = false) {
  const loads: { topic: string; resolve: (s: TopicSchema | undefined) => void }[] = [];
  const loadSchema = (topic: string) =>
    new Promise<TopicSchema | undefined>((resolve) => {
      loads.push({ topic, resolve });
      if (!held) resolve(topic === "typed" ? stored : undefined);
    });
  // checkSchema and schemaOf touch neither the store nor the observer.
  const publisher = new Publisher({} as EventStore, () => {}, {} as DeliveryObserver, loadSchema);
  return { publisher, loads };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("Publisher schema cache", () => {
  it("loads a topic's schema once, however long it is used, and again after a change is announced", async () => {
    vi.useFakeTimers();
    const { publisher, loads } = publisherWith();
    expect(await publisher.schemaOf("typed")).toBeDefined();
    expect(await publisher.schemaOf("plain")).toBeUndefined();
    // The cache had a one-second lifetime: 100 topics cost 100 queries a second.
    vi.setSystemTime(Date.now() + 60_000);
    expect(await publisher.schemaOf("typed")).toBeDefined();
    expect(await publisher.schemaOf("plain")).toBeUndefined();
    expect(loads.map((l) => l.topic)).toEqual(["typed", "plain"]);

    publisher.forgetSchema("typed");
    await publisher.schemaOf("typed");
    await publisher.schemaOf("plain");
    expect(loads.map((l) => l.topic)).toEqual(["typed", "plain", "typed"]);

    publisher.forgetSchema();
    await publisher.schemaOf("typed");
    await publisher.schemaOf("plain");
    expect(loads.map((l) => l.topic)).toEqual(["typed", "plain", "typed", "typed", "plain"]);
  });

  it("shares one load between concurrent publishes", async () => {
    const { publisher, loads } = publisherWith(true);
    const first = publisher.schemaOf("typed");
    const second = publisher.schemaOf("typed");
    loads[0]?.resolve(stored);
    expect(await first).toBeDefined();
    expect(await second).toBe(await first);
    expect(loads).toHaveLength(1);
  });

  it("does not keep a schema loaded while a change was announced: it may be the old one", async () => {
    const { publisher, loads } = publisherWith(true);
    const racing = publisher.schemaOf("typed");
    publisher.forgetSchema("typed");
    loads[0]?.resolve(undefined); // read before the change committed
    expect(await racing).toBeUndefined();
    const next = publisher.schemaOf("typed");
    expect(loads).toHaveLength(2);
    loads[1]?.resolve(stored);
    expect(await next).toBeDefined();
    expect(await publisher.schemaOf("typed")).toBe(await next);
    expect(loads).toHaveLength(2);
  });

  it("keeps sharing the load that followed a forget when the load before it ends", async () => {
    const { publisher, loads } = publisherWith(true);
    const racing = publisher.schemaOf("typed");
    publisher.forgetSchema("typed");
    const next = publisher.schemaOf("typed");
    loads[0]?.resolve(undefined);
    await racing;
    // The first load's end must not drop the second from the loads in flight.
    const third = publisher.schemaOf("typed");
    expect(loads).toHaveLength(2);
    loads[1]?.resolve(stored);
    expect(await third).toBe(await next);
  });

  it("refuses a payload of another type with the schema it cached", async () => {
    const { publisher } = publisherWith();
    const event = {
      id: "e",
      source: "s",
      type: "x.Other",
      subject: "",
      time: undefined,
      attributes: {},
      orderingKey: "",
      dataTypeUrl: "type.googleapis.com/x.Other",
      data: new Uint8Array([1]),
      deliverAfter: undefined,
    };
    await expect(publisher.checkSchema("typed", [event])).rejects.toThrow(/^events\[0\]\.data /);
    await expect(publisher.checkSchema("plain", [event])).resolves.toBeUndefined();
  });
});
