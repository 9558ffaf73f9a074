// Checks a request's bytes against its schema before the generated decoder sees them, and says which
// field is wrong. The generated decoder replaces invalid UTF-8 with U+FFFD (so two different ids could
// become one), passes NUL characters through (Postgres refuses them in text) and accepts any Timestamp
// or Duration; each of those is a bad request and must be answered INVALID_ARGUMENT, naming the field.
import { isUtf8 } from "node:buffer";
import { readFileSync } from "node:fs";
import {
  createFileRegistry,
  type DescField,
  type DescMessage,
  type DescService,
  fromBinary,
  ScalarType,
} from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const registry = createFileRegistry(
  fromBinary(
    FileDescriptorSetSchema,
    readFileSync(new URL("../../descriptors/pgmesh.binpb", import.meta.url)),
  ),
);

// The ranges google/protobuf/timestamp.proto and duration.proto define as valid.
const TIMESTAMP_SECONDS = { min: -62_135_596_800, max: 253_402_300_799 }; // 0001-01-01 .. 9999-12-31
const DURATION_SECONDS = 315_576_000_000; // 10,000 years
const MAX_NANOS = 999_999_999;

/** A service of the API as buf described it (the console's Connect gateway serves from these). */
export function serviceDescriptor(typeName: string): DescService {
  const service = registry.getService(typeName);
  if (!service) throw new Error(`no descriptor for ${typeName}`);
  return service;
}

/** The request message type of a method, by its gRPC path ("/pgmesh.v1.PublisherService/Publish"). */
export function requestTypeOf(path: string): DescMessage {
  const [, service, method] = path.split("/");
  const desc = registry.getService(service ?? "")?.methods.find((m) => m.name === method);
  if (!desc) throw new Error(`no descriptor for ${path}`);
  return desc.input;
}

/**
 * A refusal found deep in a message. The place is built while the walk unwinds, segment by segment,
 * so the walk over an acceptable request (every publish) builds no path strings at all.
 */
interface Problem {
  /** Where, from the level that found it down: "events[3].time." before the last dot is trimmed. */
  readonly where: string;
  say(where: string): string;
}

const problemAt = (where: string, say: (where: string) => string): Problem => ({ where, say });

/** The problem, placed under `prefix` (the field, or the list item, it was found in). */
const under = (prefix: string, problem: Problem | undefined): Problem | undefined =>
  problem && problemAt(prefix + problem.where, problem.say);

/** What the walk needs of a message type, computed once per type. */
interface MessagePlan {
  fields: Map<number, DescField>;
  /** Set for the well-known types whose ranges are checked. */
  wellKnown: "timestamp" | "duration" | undefined;
}

const plans = new WeakMap<DescMessage, MessagePlan>();

function planOf(type: DescMessage): MessagePlan {
  let plan = plans.get(type);
  if (!plan) {
    plan = {
      fields: new Map(type.fields.map((f) => [f.number, f])),
      wellKnown:
        type.typeName === "google.protobuf.Timestamp"
          ? "timestamp"
          : type.typeName === "google.protobuf.Duration"
            ? "duration"
            : undefined,
    };
    plans.set(type, plan);
  }
  return plan;
}

/** Why the bytes are not an acceptable `type` message (naming the field), or undefined when they are. */
export function requestProblem(type: DescMessage, bytes: Uint8Array): string | undefined {
  try {
    const problem = messageProblem(type, bytes);
    return problem?.say(problem.where.replace(/\.$/, ""));
  } catch (error) {
    return `the request is not a valid ${type.name} message: ${(error as Error).message}`;
  }
}

function messageProblem(type: DescMessage, bytes: Uint8Array): Problem | undefined {
  const plan = planOf(type);
  const reader = new BinaryReader(bytes);
  // Both only when needed: list indexes for a repeated field's path, varints for a range check.
  let counts: Map<number, number> | undefined;
  let seconds: bigint | string | undefined;
  let nanos: bigint | string | undefined;
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    const field = plan.fields.get(number);
    if (field && wireType === WireType.Varint) {
      const value = reader.int64();
      if (number === 1) seconds = value;
      else if (number === 2) nanos = value;
      continue;
    }
    if (!field || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, number);
      continue;
    }
    let index = 0;
    if (field.fieldKind === "list") {
      counts ??= new Map();
      index = counts.get(number) ?? 0;
      counts.set(number, index + 1);
    }
    const problem = fieldProblem(field, reader.bytes(), index);
    if (problem) return problem;
  }
  return plan.wellKnown && wellKnownProblem(plan.wellKnown, BigInt(seconds ?? 0n), BigInt(nanos ?? 0n));
}

function fieldProblem(field: DescField, bytes: Uint8Array, index: number): Problem | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.STRING ? under(field.name, stringProblem(bytes)) : undefined;
    case "message":
      return under(`${field.name}.`, messageProblem(field.message, bytes));
    case "list":
      if (field.listKind === "message") {
        return under(`${field.name}[${index}].`, messageProblem(field.message, bytes));
      }
      return field.scalar === ScalarType.STRING
        ? under(`${field.name}[${index}]`, stringProblem(bytes))
        : undefined;
    case "map":
      return mapEntryProblem(field, bytes);
    default:
      return undefined;
  }
}

function mapEntryProblem(field: DescField & { fieldKind: "map" }, bytes: Uint8Array): Problem | undefined {
  const reader = new BinaryReader(bytes);
  let key = "";
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    if (wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, number);
      continue;
    }
    const value = reader.bytes();
    if (number === 1 && field.mapKey === ScalarType.STRING) {
      const problem = under(`${field.name} key`, stringProblem(value));
      if (problem) return problem;
      key = Buffer.from(value).toString("utf8").slice(0, 64);
      // A decoder that builds maps as plain objects would make this key the object's prototype and
      // lose it: the entry would vanish, and the request pass the checks without it.
      if (key === "__proto__") return problemAt(field.name, (at) => `${at} key "__proto__" is not allowed`);
    } else if (number === 2) {
      const at = `${field.name}[${JSON.stringify(key)}]`;
      const problem =
        field.mapKind === "message"
          ? under(`${at}.`, messageProblem(field.message, value))
          : field.scalar === ScalarType.STRING
            ? under(at, stringProblem(value))
            : undefined;
      if (problem) return problem;
    }
  }
  return undefined;
}

function stringProblem(bytes: Uint8Array): Problem | undefined {
  if (!isUtf8(bytes)) return problemAt("", (at) => `${at} is not valid UTF-8`);
  if (bytes.includes(0)) return problemAt("", (at) => `${at} contains a NUL character, which is not allowed`);
  return undefined;
}

function wellKnownProblem(
  kind: "timestamp" | "duration",
  seconds: bigint,
  rawNanos: bigint,
): Problem | undefined {
  // nanos is an int32: the low 32 bits of the varint, as a signed number.
  const nanos = Number(BigInt.asIntN(32, rawNanos));
  if (kind === "timestamp") {
    if (seconds < TIMESTAMP_SECONDS.min || seconds > TIMESTAMP_SECONDS.max) {
      return problemAt(
        "",
        (at) => `${at} is out of range: a timestamp must lie between 0001-01-01 and 9999-12-31`,
      );
    }
    if (nanos < 0 || nanos > MAX_NANOS) {
      return problemAt("", (at) => `${at}.nanos must be 0..${MAX_NANOS}, got ${nanos}`);
    }
    return undefined;
  }
  if (seconds < -DURATION_SECONDS || seconds > DURATION_SECONDS) {
    return problemAt(
      "",
      (at) => `${at} is out of range: a duration is at most ${DURATION_SECONDS} seconds either way`,
    );
  }
  if (
    nanos < -MAX_NANOS ||
    nanos > MAX_NANOS ||
    (seconds !== 0n && nanos !== 0 && seconds < 0n !== nanos < 0)
  ) {
    return problemAt(
      "",
      (at) => `${at}.nanos must be -${MAX_NANOS}..${MAX_NANOS} with the sign of seconds, got ${nanos}`,
    );
  }
  return undefined;
}

/** What a method receives instead of its request when the request's bytes are refused. */
export class RefusedRequest {
  constructor(readonly problem: string) {}
}

/**
 * The service definition with every request checked before it is decoded. grpc-js answers a
 * throwing deserializer with INTERNAL, so a refused request reaches the handler as a
 * RefusedRequest, which it answers with INVALID_ARGUMENT.
 */
export function checkedRequests<
  T extends Record<string, { path: string; requestDeserialize: (b: Buffer) => unknown }>,
>(
  service: T,
  /**
   * false: only bytes that do not decode are refused. A stream's settles are judged per ack id by
   * the delivery layer (a bad reason must not end the stream), so Subscribe checks no fields here.
   */
  checkFields = true,
): T {
  return Object.fromEntries(
    Object.entries(service).map(([name, method]) => {
      const type = requestTypeOf(method.path);
      const decode = method.requestDeserialize;
      const requestDeserialize = (bytes: Buffer) => {
        const problem = checkFields ? requestProblem(type, bytes) : undefined;
        if (problem) return new RefusedRequest(problem);
        try {
          return decode(bytes);
        } catch (error) {
          return new RefusedRequest(
            `the request is not a valid ${type.name} message: ${(error as Error).message}`,
          );
        }
      };
      return [name, { ...method, requestDeserialize }];
    }),
  ) as T;
}
