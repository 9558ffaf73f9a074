// Input that is well-formed Protobuf but that Postgres (or the decoder) cannot take as it is: NUL
// characters, invalid UTF-8, numbers beyond int64, timestamps and durations out of range, and bytes
// that are no message at all. Each is INVALID_ARGUMENT naming the field, never INTERNAL.
import { Client, credentials, Metadata, status } from "@grpc/grpc-js";
import { CreateSubscriptionRequest } from "@pgmesh/proto/pgmesh/v1/admin";
import { Event } from "@pgmesh/proto/pgmesh/v1/event";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe } from "../support/stream-probe.ts";

const t = useTestBroker();
let raw: Client;

beforeAll(async () => {
  raw = new Client(t.mesh.address, credentials.createInsecure());
  await t.mesh.client.createTopic("bad");
  await t.mesh.client.createSubscription("bad.sub", "bad");
});
afterAll(() => raw?.close());

/** Sends bytes as they are, as a client with its own encoder could. */
function rawCall(path: string, bytes: Uint8Array): Promise<{ code: number; details: string }> {
  const identity = (value: Buffer) => value;
  return new Promise((resolve) =>
    raw.makeUnaryRequest(path, identity, identity, Buffer.from(bytes), new Metadata(), {}, (error) =>
      resolve(error ? { code: error.code, details: error.details } : { code: status.OK, details: "" }),
    ),
  );
}

/** A publish of one event whose id is given as raw bytes (the encoder would only write valid UTF-8). */
function publishWithRawId(id: number[]): Uint8Array {
  const event = Event.encode(Event.fromPartial({ source: "s", type: "t" })).finish();
  const withId = Uint8Array.from([10, id.length, ...id, ...event]);
  return Uint8Array.from([10, 3, ...Buffer.from("bad"), 18, withId.length, ...withId]);
}

const PUBLISH = "/pgmesh.v1.PublisherService/Publish";

describe("strings", () => {
  it("refuses a NUL character in any string field, naming it", async () => {
    const cases: [Parameters<typeof t.mesh.client.publish>[1], string][] = [
      [[{ id: "a\u0000b", source: "s", type: "t" }], "events[0].id"],
      [[{ source: "s\u0000", type: "t" }], "events[0].source"],
      [
        [
          { source: "s", type: "t" },
          { source: "s", type: "t", subject: "\u0000" },
        ],
        "events[1].subject",
      ],
      [[{ source: "s", type: "t", orderingKey: "k\u0000" }], "events[0].ordering_key"],
      [[{ source: "s", type: "t", attributes: { region: "eu\u0000" } }], 'events[0].attributes["region"]'],
    ];
    for (const [events, field] of cases) {
      expect(await rejection(t.mesh.client.publish("bad", events))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: `${field} contains a NUL character, which is not allowed`,
      });
    }
    const filter = await rejection(
      t.mesh.client.createSubscription("bad.nul", "bad", { filter: 'a = "\u0000"' }),
    );
    expect(filter).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "filter contains a NUL character, which is not allowed",
    });
    const reason = StreamProbe.raw(t.mesh.client);
    reason.send({
      request: {
        $case: "open",
        value: {
          subscription: "bad.sub\u0000",
          consumer: "",
          maxOutstandingMessages: 0,
          maxOutstandingBytes: 0,
        },
      },
    });
    // On a stream the delivery layer judges the fields (a settle's reason is refused per ack id).
    const ended = await reason.ended;
    expect(ended.code).toBe(status.INVALID_ARGUMENT);
    expect(ended.details).toMatch(/^subscription name "bad\.sub\\u0000" is not valid/);
  });

  it("refuses invalid UTF-8 instead of replacing it, so two different ids cannot collide", async () => {
    const first = await rawCall(PUBLISH, publishWithRawId([0x61, 0xff]));
    expect(first).toEqual({ code: status.INVALID_ARGUMENT, details: "events[0].id is not valid UTF-8" });
    expect(await rawCall(PUBLISH, publishWithRawId([0x61, 0xfe]))).toEqual(first);
    // A valid id of the same shape is taken: the check is on the bytes, not on the characters.
    expect((await rawCall(PUBLISH, publishWithRawId([0x61, 0xc3, 0xa9]))).code).toBe(status.OK);
  });

  it("refuses bytes that are no message at all with INVALID_ARGUMENT", async () => {
    const error = await rawCall(PUBLISH, Uint8Array.from([18, 13, 74, 11, 8, 128, 128, 128, 128]));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toMatch(/^the request is not a valid PublishRequest message: /);
  });
});

describe("numbers", () => {
  it("refuses dead letter ids and page tokens beyond int64", async () => {
    const tooBig = "9223372036854775808";
    expect(await rejection(t.mesh.client.redriveDeadLetters("bad.sub", { ids: [tooBig] }))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: `dead letter id "${tooBig}" is not valid`,
    });
    expect(
      await rejection(t.mesh.client.purgeDeadLetters("bad.sub", { ids: ["9999999999999999999"] })),
    ).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'dead letter id "9999999999999999999" is not valid',
    });
    expect(await rejection(t.mesh.client.listDeadLetters({ subscription: "bad.sub" }, 10, tooBig))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "page_token is not one this server returned",
    });
    // The largest int64 is a valid id (of no dead letter).
    expect(await t.mesh.client.redriveDeadLetters("bad.sub", { ids: ["9223372036854775807"] })).toBe(0);
  });

  it("refuses timestamps and durations out of range, naming the field", async () => {
    const cases: [Uint8Array, string][] = [
      [
        publishWithTime(5, 253_402_300_800),
        "events[0].time is out of range: a timestamp must lie between 0001-01-01 and 9999-12-31",
      ],
      [
        publishWithTime(11, 2 ** 52),
        "events[0].deliver_after is out of range: a timestamp must lie between 0001-01-01 and 9999-12-31",
      ],
      [
        publishWithTime(5, -62_135_596_801),
        "events[0].time is out of range: a timestamp must lie between 0001-01-01 and 9999-12-31",
      ],
    ];
    for (const [bytes, details] of cases) {
      expect(await rawCall(PUBLISH, bytes)).toEqual({ code: status.INVALID_ARGUMENT, details });
    }
    const subscription = CreateSubscriptionRequest.encode(
      CreateSubscriptionRequest.fromPartial({
        name: "bad.long",
        topic: "bad",
        ackDeadline: { seconds: 2 ** 53 + 1, nanos: 0 },
      }),
    ).finish();
    expect(await rawCall("/pgmesh.v1.AdminService/CreateSubscription", subscription)).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "ack_deadline is out of range: a duration is at most 315576000000 seconds either way",
    });
  });
});

/** A publish whose event sets a Timestamp field (5 = time, 11 = deliver_after) to `seconds`. */
function publishWithTime(field: number, seconds: number): Uint8Array {
  const event = Event.encode(Event.fromPartial({ source: "s", type: "t" })).finish();
  const timestamp = Uint8Array.from([8, ...varint(BigInt(seconds))]);
  const withTime = Uint8Array.from([...event, (field << 3) | 2, timestamp.length, ...timestamp]);
  return Uint8Array.from([10, 3, ...Buffer.from("bad"), 18, withTime.length, ...withTime]);
}

function varint(value: bigint): number[] {
  let v = BigInt.asUintN(64, value);
  const out: number[] = [];
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? byte | 0x80 : byte);
  } while (v > 0n);
  return out;
}
