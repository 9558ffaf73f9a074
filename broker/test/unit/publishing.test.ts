import { describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../src/delivery/model.ts";
import { assertName } from "../../src/delivery/names.ts";
import { normaliseEvent } from "../../src/delivery/publishing.ts";

const base: EventEnvelope = {
  id: "",
  source: "svc",
  type: "",
  subject: "",
  time: undefined,
  attributes: {},
  orderingKey: "",
  dataTypeUrl: "type.googleapis.com/shop.v1.OrderPlaced",
  data: new Uint8Array([1]),
  deliverAfter: undefined,
};

describe("normaliseEvent", () => {
  it("generates a UUID id and takes the type from the type URL", () => {
    const event = normaliseEvent(base, 0);
    expect(event.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(event.type).toBe("shop.v1.OrderPlaced");
  });

  it("keeps a producer's id and type", () => {
    expect(normaliseEvent({ ...base, id: "mine", type: "custom" }, 0)).toMatchObject({
      id: "mine",
      type: "custom",
    });
  });

  it("names the event and field it refuses", () => {
    expect(() => normaliseEvent({ ...base, source: "" }, 3)).toThrow(/^events\[3\]\.source is required/);
    expect(() => normaliseEvent({ ...base, dataTypeUrl: "no-slash" }, 1)).toThrow(
      /events\[1\]\.data\.type_url "no-slash" is not a type URL/,
    );
    expect(() => normaliseEvent({ ...base, attributes: { ok: "x".repeat(4097) } }, 0)).toThrow(
      /attributes\["ok"\] is 4097 characters long; the limit is 4096/,
    );
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`a${i}`, "v"]));
    expect(() => normaliseEvent({ ...base, attributes: many }, 0)).toThrow(/65 entries; at most 64/);
  });

  it("counts attributes towards the 1 MiB limit", () => {
    const attributes = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`a${i}`, "x".repeat(4096)]));
    const data = new Uint8Array(1024 * 1024 - 60 * 4096);
    expect(() => normaliseEvent({ ...base, data, attributes }, 0)).toThrow(
      /an event may be at most 1\.00 MiB/,
    );
  });
});

describe("assertName", () => {
  it.each(["a", "orders", "orders.v1-audit_2", `a${"b".repeat(99)}`])("accepts %s", (name) => {
    expect(assertName("topic", name)).toBe(name);
  });
  it.each(["", "A", "9lives", "with space", "sub/slash", `a${"b".repeat(100)}`, "é"])(
    "refuses %j",
    (name) => {
      expect(() => assertName("subscription", name)).toThrow(/subscription name/);
    },
  );
});
