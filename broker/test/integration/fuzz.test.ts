// Property: whatever a client sends, to any field of any RPC, the broker answers with a deliberate
// status (never INTERNAL or UNKNOWN, never a hang), and a consumer on another subscription keeps
// receiving throughout. Requests are built from the API's own descriptors, so a new field is fuzzed
// without touching this file; raw byte mutations cover what no encoder would produce.
import { readFileSync } from "node:fs";
import {
  create,
  createFileRegistry,
  type DescField,
  type DescMessage,
  fromBinary,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Client, credentials, Metadata, status } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { StreamProbe } from "../support/stream-probe.ts";
import { until } from "../support/until.ts";

const RUNS = Number(process.env.PGMESH_FUZZ_RUNS ?? 60);
const t = useTestBroker();
const registry = createFileRegistry(
  fromBinary(
    FileDescriptorSetSchema,
    readFileSync(new URL("../../descriptors/pgmesh.binpb", import.meta.url)),
  ),
);
const SERVICES = ["pgmesh.v1.PublisherService", "pgmesh.v1.AdminService", "pgmesh.v1.SubscriberService"];
const FORBIDDEN = new Set([status.INTERNAL, status.UNKNOWN, status.DEADLINE_EXCEEDED]);

// Strings that reach the database: existing names, names that look right, and the hostile ones.
const text = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "fuzz.topic",
      "fuzz.sub",
      "",
      "fuzz.other",
      "99999999999999999999",
      "9999999999999999999",
      "-1",
      "1:1",
      "9223372036854775807",
      'region = "eu"',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }).map((s) => `fuzz.${s}\u0000`) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 300 }) },
  { weight: 1, arbitrary: fc.nat(30).map((n) => "x".repeat(n * 20)) },
);
const int64 = fc.oneof(
  fc.constantFrom(0n, 1n, -1n, 2n ** 53n, 2n ** 63n - 1n, -(2n ** 63n), 253_402_300_800n, 3600n, 30n),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
);
const int32 = fc.oneof(fc.constantFrom(0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 999_999_999, 1000), fc.integer());
const uint32 = fc.oneof(fc.constantFrom(0, 1, 1000, 1001, 2 ** 32 - 1), fc.nat());

function scalar(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return text;
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.oneof(fc.double(), fc.constantFrom(0, 1, 2, Number.NaN, Number.POSITIVE_INFINITY, -1));
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return int64;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return uint32;
    default:
      return int32;
  }
}

const arbitraries = new Map<DescMessage, fc.Arbitrary<Record<string, unknown>>>();

/** Random values for every field of a message type, each field sometimes left out. */
function messageArbitrary(desc: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const cached = arbitraries.get(desc);
  if (cached) return cached;
  if (depth > 4) return fc.constant({});
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of desc.fields) fields[field.localName] = fieldArbitrary(field, depth);
  const oneofs = desc.oneofs.map((o) => o.fields.map((f) => f.localName));
  const arbitrary = fc.record(fields, { requiredKeys: [] }).map((value) => {
    // A oneof takes one case: keep the first one the record happens to set.
    for (const names of oneofs) {
      const set = names.filter((n) => value[n] !== undefined);
      for (const name of set.slice(1)) delete value[name];
      const [first] = set;
      const oneof = desc.oneofs.find((o) => o.fields.some((f) => f.localName === first));
      if (first && oneof) {
        value[oneof.localName] = { case: first, value: value[first] };
        delete value[first];
      }
    }
    return value;
  });
  arbitraries.set(desc, arbitrary);
  return arbitrary;
}

function fieldArbitrary(field: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case "scalar":
      return scalar(field.scalar);
    case "enum":
      return int32.map((n) => n % 4);
    case "message":
      return messageArbitrary(field.message, depth + 1).map((v) => create(field.message, v));
    case "list": {
      const element =
        field.listKind === "message"
          ? messageArbitrary(field.message, depth + 1).map((v) => create(field.message, v))
          : field.listKind === "enum"
            ? int32
            : scalar(field.scalar);
      return fc.array(element, { maxLength: 4 });
    }
    case "map":
      return fc.dictionary(fc.oneof(text, fc.constantFrom("region", "k")), text, { maxKeys: 3 });
  }
}

/** A request's bytes: a random well-formed message, or one with bytes flipped, cut or spliced in. */
function requestBytes(desc: DescMessage): fc.Arbitrary<Uint8Array> {
  const encoded = messageArbitrary(desc).map((v) => toBinary(desc, create(desc, v)));
  return fc.oneof(
    { weight: 3, arbitrary: encoded },
    {
      weight: 1,
      arbitrary: fc.tuple(encoded, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([bytes, at, byte]) => {
        const copy = Uint8Array.from(bytes);
        if (copy.length > 0) copy[at % copy.length] = byte;
        return copy;
      }),
    },
    { weight: 1, arbitrary: encoded.chain((bytes) => fc.nat(bytes.length).map((n) => bytes.subarray(0, n))) },
    // A string field holding bytes that are not UTF-8 (field 1 is a string in most requests).
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ maxLength: 8 })
        .map((junk) => Uint8Array.from([10, junk.length + 2, 0xc3, 0x28, ...junk])),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  );
}

const identity = (value: Buffer) => value;
let raw: Client;
const counts = { calls: 0, streams: 0, byCode: {} as Record<string, number> };

function count(code: number) {
  counts.byCode[status[code] ?? String(code)] = (counts.byCode[status[code] ?? String(code)] ?? 0) + 1;
}

function callUnary(path: string, bytes: Uint8Array): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    raw.makeUnaryRequest(
      path,
      identity,
      identity,
      Buffer.from(bytes),
      new Metadata(),
      { deadline: Date.now() + 15_000 },
      (error) =>
        resolve(error ? { code: error.code, details: error.details } : { code: status.OK, details: "" }),
    );
  });
}

function callStream(path: string, messages: Uint8Array[]): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    const call = raw.makeBidiStreamRequest(path, identity, identity, new Metadata(), {
      deadline: Date.now() + 15_000,
    });
    call.on("data", () => {});
    call.on("error", (error: { code: number; details: string }) =>
      resolve({ code: error.code, details: error.details }),
    );
    call.on("status", (s) => resolve({ code: s.code, details: s.details }));
    for (const message of messages) call.write(Buffer.from(message));
    // Give the broker time to handle them, then half-close: a healthy stream ends OK.
    setTimeout(() => call.end(), 30);
  });
}

let canary: StreamProbe;
let published = 0;
let publisher: NodeJS.Timeout;

beforeAll(async () => {
  raw = new Client(t.mesh.address, credentials.createInsecure());
  await t.mesh.client.createTopic("fuzz.topic");
  await t.mesh.client.createSubscription("fuzz.sub", "fuzz.topic", { ackDeadlineSeconds: 30 });
  await t.mesh.client.createTopic("canary-q7");
  await t.mesh.client.createSubscription("canary-q7.sub", "canary-q7");
  canary = await StreamProbe.open(t.mesh.client, "canary-q7.sub");
  let acked = 0;
  publisher = setInterval(() => {
    const ids = canary.deliveries.slice(acked).map((d) => d.ackId);
    acked += ids.length;
    if (ids.length > 0) canary.ack(ids);
    published++;
    void t.mesh.client.publish("canary-q7", [{ source: "canary", type: "tick", id: `tick-${published}` }]);
  }, 100);
});

afterAll(() => {
  clearInterval(publisher);
  raw?.close();
  canary?.call.end();
  console.log(
    `fuzz: ${counts.calls} unary calls, ${counts.streams} streams; statuses ${JSON.stringify(counts.byCode)}`,
  );
});

describe("every field of every RPC, random and malformed", () => {
  const methods = SERVICES.flatMap((name) => registry.getService(name)?.methods ?? []);

  it.each(methods.filter((m) => m.methodKind === "unary").map((m) => [m.name, m] as const))(
    "%s answers a deliberate status",
    async (_name, method) => {
      const path = `/${method.parent.typeName}/${method.name}`;
      await fc.assert(
        fc.asyncProperty(requestBytes(method.input), async (bytes) => {
          const result = await callUnary(path, bytes);
          counts.calls++;
          count(result.code);
          expect(FORBIDDEN.has(result.code), `${path}: ${status[result.code]} ${result.details}`).toBe(false);
        }),
        { numRuns: RUNS },
      );
    },
    120_000,
  );

  it("Subscribe answers any sequence of messages with a deliberate status", async () => {
    const method = registry.getService("pgmesh.v1.SubscriberService")?.methods[0];
    if (!method) throw new Error("no Subscribe");
    const open = toBinary(
      method.input,
      create(method.input, { request: { case: "open", value: { subscription: "fuzz.sub" } } }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(requestBytes(method.input), { minLength: 1, maxLength: 5 }),
        async (opensFirst, messages) => {
          const result = await callStream(
            "/pgmesh.v1.SubscriberService/Subscribe",
            opensFirst ? [open, ...messages] : messages,
          );
          counts.streams++;
          count(result.code);
          expect(FORBIDDEN.has(result.code), `Subscribe: ${status[result.code]} ${result.details}`).toBe(
            false,
          );
        },
      ),
      { numRuns: RUNS * 2 },
    );
  }, 120_000);

  it("kept the canary consumer receiving throughout", async () => {
    const sent = published;
    await until(() => canary.deliveries.length >= sent, "canary deliveries", 10_000);
    expect(new Set(canary.deliveries.map((d) => d.event?.id)).size).toBeGreaterThanOrEqual(sent);
    expect(await Promise.race([canary.ended, Promise.resolve("open")])).toBe("open");
  });
});
