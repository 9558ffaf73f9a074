// The web console's own logic: how it writes numbers, ages and bytes, how it turns counter readings
// into rates, and how it decodes payloads (through a topic's schema, the well-known JSON types, or
// not at all).

import { readFileSync } from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack, FileDescriptorSetSchema, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { decodePayload, payloadRegistry } from "../../console/src/decode.ts";
import { age, count, hexDump, rate, time } from "../../console/src/format.ts";
import { TopicSchemaSchema } from "../../console/src/gen/pgmesh/v1/admin_pb.ts";
import { RateTracker, rateBetween, ValueHistory } from "../../console/src/rates.ts";

describe("format", () => {
  it("counts with thousands separators, from numbers and bigints", () => {
    expect(count(0)).toBe("0");
    expect(count(999)).toBe("999");
    expect(count(1_234_567)).toBe("1,234,567");
    expect(count(100_000n)).toBe("100,000");
  });

  it("writes ages in their two largest units", () => {
    expect(age(0)).toBe("0 s");
    expect(age(59.9)).toBe("59 s");
    expect(age(60)).toBe("1 min");
    expect(age(200)).toBe("3 min 20 s");
    expect(age(7_500)).toBe("2 h 5 min");
    expect(age(3 * 86_400 + 4 * 3_600 + 59)).toBe("3 d 4 h");
    expect(age(604_800)).toBe("7 d");
    expect(age(-5)).toBe("0 s");
  });

  it("writes rates per second, zero for nothing or nonsense", () => {
    expect(rate(0)).toBe("0/s");
    expect(rate(Number.NaN)).toBe("0/s");
    expect(rate(0.44)).toBe("0.4/s");
    expect(rate(12.4)).toBe("12/s");
    expect(rate(1_250)).toBe("1.3k/s");
  });

  it("writes times in UTC to the second", () => {
    expect(time(new Date("2026-12-01T09:30:00.750Z"))).toBe("2026-12-01 09:30:00 UTC");
    expect(time({ seconds: 0n, nanos: 0 } as never)).toBe("1970-01-01 00:00:00 UTC");
    expect(time(undefined)).toBe("-");
  });

  it("dumps bytes as hex with printable text, and says how many it left out", () => {
    const dump = hexDump(new TextEncoder().encode("hello\u0000world, this is pgmesh"));
    expect(dump.split("\n")[0]).toBe(
      "000000  68 65 6c 6c 6f 00 77 6f 72 6c 64 2c 20 74 68 69  hello.world, thi",
    );
    expect(dump.split("\n")).toHaveLength(2);
    expect(hexDump(new Uint8Array(40), 16).split("\n").at(-1)).toBe("... 24 more bytes");
  });
});

describe("rates", () => {
  it("is the change between the last two readings per second", () => {
    const rates = new RateTracker();
    expect(rates.rate("t")).toBe(0);
    rates.record("t", { at: 1_000, value: 10 });
    expect(rates.rate("t")).toBe(0);
    rates.record("t", { at: 3_000, value: 30 });
    expect(rates.rate("t")).toBe(10);
    rates.record("t", { at: 3_000, value: 99 }); // the same refresh read again: ignored
    expect(rates.rate("t")).toBe(10);
    rates.record("t", { at: 5_000, value: 30 });
    expect(rates.rate("t")).toBe(0);
    expect(rates.history("t")).toEqual([10, 0]);
  });

  it("starts again when the counter goes down (the broker restarted)", () => {
    const rates = new RateTracker();
    rates.record("t", { at: 1_000, value: 500 });
    rates.record("t", { at: 2_000, value: 3 });
    expect(rates.rate("t")).toBe(0);
    rates.record("t", { at: 3_000, value: 8 });
    expect(rates.rate("t")).toBe(5);
  });

  it("keeps a bounded history for the charts", () => {
    const values = new ValueHistory();
    for (let i = 0; i < 100; i++) values.record("s", i, i);
    expect(values.history("s")).toHaveLength(30);
    expect(values.history("s").at(-1)).toBe(99);
    expect(rateBetween({ at: 2, value: 1 }, { at: 1, value: 5 })).toBe(0);
  });
});

describe("decode", () => {
  const descriptors = readFileSync(new URL("../../descriptors/pgmesh.binpb", import.meta.url));

  it("decodes a payload through the topic's schema", () => {
    const registry = payloadRegistry(descriptors);
    const topic = create(TopicSchemaSchema, { messageTypes: ["shop.v1.OrderPlaced"] });
    const data = anyPack(TopicSchemaSchema, topic);
    expect(decodePayload(data, registry)).toEqual({
      kind: "json",
      typeName: "pgmesh.v1.TopicSchema",
      json: { messageTypes: ["shop.v1.OrderPlaced"] },
    });
  });

  it("decodes the JSON a CLI publish sends (google.protobuf.Value) without a schema", () => {
    const registry = payloadRegistry(undefined);
    const value = create(ValueSchema, {
      kind: { case: "structValue", value: { fields: { id: { kind: { case: "numberValue", value: 42 } } } } },
    });
    expect(decodePayload(anyPack(ValueSchema, value), registry)).toMatchObject({
      kind: "json",
      json: { id: 42 },
    });
  });

  it("shows bytes for a type the schema lacks, or bytes that do not decode as their type", () => {
    const registry = payloadRegistry(descriptors);
    const unknown = decodePayload(
      { typeUrl: "type.googleapis.com/shop.v1.Nope", value: new Uint8Array([1, 2]) } as never,
      registry,
    );
    expect(unknown).toMatchObject({
      kind: "raw",
      typeName: "shop.v1.Nope",
      why: "the topic has no schema for this type",
    });
    const broken = decodePayload(
      {
        typeUrl: "type.googleapis.com/pgmesh.v1.TopicSchema",
        value: new Uint8Array([0x0a, 0x05, 0x61]),
      } as never,
      registry,
    );
    expect(broken).toMatchObject({ kind: "raw", typeName: "pgmesh.v1.TopicSchema" });
    expect((broken as { why: string }).why).toMatch(/^it does not decode as pgmesh\.v1\.TopicSchema/);
    expect(decodePayload(undefined, registry)).toEqual({ kind: "none" });
  });

  it("falls back to the well-known types when the schema's bytes are not descriptors", () => {
    const registry = payloadRegistry(new Uint8Array([0xff, 0xff]));
    expect(registry.getMessage("google.protobuf.Value")).toBeDefined();
    expect(registry.getMessage("pgmesh.v1.Topic")).toBeUndefined();
    expect(toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema)).length).toBe(0);
  });
});
