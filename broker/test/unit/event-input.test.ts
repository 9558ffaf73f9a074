import { fromBinary, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { eventFromJson } from "../../src/cli/event-input.ts";
import { eventToJson, VALUE_TYPE_URL } from "../../src/cli/format.ts";

describe("CLI event JSON", () => {
  it("packs JSON data as a google.protobuf.Value and shows it back as JSON", () => {
    const event = eventFromJson(
      '{"type":"t","subject":"s","data":{"a":[1,"x",null]},"attributes":{"k":"v"}}',
      { source: "cli" },
    );
    expect(event.source).toBe("cli");
    expect(event.data?.typeUrl).toBe(VALUE_TYPE_URL);
    expect(toJson(ValueSchema, fromBinary(ValueSchema, event.data?.value ?? new Uint8Array()))).toEqual({
      a: [1, "x", null],
    });
    const shown = eventToJson({ ...event, id: "1", topic: "t", publishTime: undefined } as never, 2);
    expect(shown).toMatchObject({
      id: "1",
      type: "t",
      subject: "s",
      attributes: { k: "v" },
      attempt: 2,
      data: { a: [1, "x", null] },
    });
  });

  it("passes binary payloads through with their type URL", () => {
    const event = eventFromJson('{"type":"t","dataBase64":"AQI=","dataTypeUrl":"type.googleapis.com/a.B"}', {
      source: "cli",
    });
    expect(event.data).toEqual({ typeUrl: "type.googleapis.com/a.B", value: Buffer.from([1, 2]) });
  });

  it("explains what is wrong with bad input", () => {
    expect(() => eventFromJson("{nope", { source: "c" })).toThrow(/not valid JSON/);
    expect(() => eventFromJson("[1]", { source: "c" })).toThrow(/must be a JSON object/);
    expect(() => eventFromJson('{"typo":1}', { source: "c" })).toThrow(/unknown event field\(s\): typo/);
    expect(() => eventFromJson('{"time":"yesterday"}', { source: "c" })).toThrow(/not an RFC 3339 timestamp/);
    expect(() => eventFromJson('{"dataBase64":"AA=="}', { source: "c" })).toThrow(/needs dataTypeUrl/);
  });
});
