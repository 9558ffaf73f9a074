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

/** Why the bytes are not an acceptable `type` message (naming the field), or undefined when they are. */
export function requestProblem(type: DescMessage, bytes: Uint8Array): string | undefined {
  try {
    return messageProblem(type, bytes, "");
  } catch (error) {
    return `the request is not a valid ${type.name} message: ${(error as Error).message}`;
  }
}

function messageProblem(type: DescMessage, bytes: Uint8Array, path: string): string | undefined {
  const reader = new BinaryReader(bytes);
  const counts = new Map<number, number>();
  const numbers = new Map<number, bigint | string>();
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    const field = type.fields.find((f) => f.number === number);
    if (field && wireType === WireType.Varint) {
      numbers.set(number, reader.int64());
      continue;
    }
    if (!field || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, number);
      continue;
    }
    const index = counts.get(number) ?? 0;
    counts.set(number, index + 1);
    const problem = fieldProblem(field, reader.bytes(), `${path}${field.name}`, index);
    if (problem) return problem;
  }
  return wellKnownProblem(type, numbers, path.replace(/\.$/, ""));
}

function fieldProblem(field: DescField, bytes: Uint8Array, path: string, index: number): string | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.STRING ? stringProblem(bytes, path) : undefined;
    case "message":
      return messageProblem(field.message, bytes, `${path}.`);
    case "list":
      if (field.listKind === "message") return messageProblem(field.message, bytes, `${path}[${index}].`);
      return field.scalar === ScalarType.STRING ? stringProblem(bytes, `${path}[${index}]`) : undefined;
    case "map":
      return mapEntryProblem(field, bytes, path);
    default:
      return undefined;
  }
}

function mapEntryProblem(
  field: DescField & { fieldKind: "map" },
  bytes: Uint8Array,
  path: string,
): string | undefined {
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
      const problem = stringProblem(value, `${path} key`);
      if (problem) return problem;
      key = Buffer.from(value).toString("utf8").slice(0, 64);
      // A decoder that builds maps as plain objects would make this key the object's prototype and
      // lose it: the entry would vanish, and the request pass the checks without it.
      if (key === "__proto__") return `${path} key "__proto__" is not allowed`;
    } else if (number === 2) {
      const at = `${path}[${JSON.stringify(key)}]`;
      if (field.mapKind === "message") {
        const problem = messageProblem(field.message, value, `${at}.`);
        if (problem) return problem;
      } else if (field.scalar === ScalarType.STRING) {
        const problem = stringProblem(value, at);
        if (problem) return problem;
      }
    }
  }
  return undefined;
}

function stringProblem(bytes: Uint8Array, path: string): string | undefined {
  if (!isUtf8(bytes)) return `${path} is not valid UTF-8`;
  if (bytes.includes(0)) return `${path} contains a NUL character, which is not allowed`;
  return undefined;
}

function wellKnownProblem(
  type: DescMessage,
  numbers: Map<number, bigint | string>,
  path: string,
): string | undefined {
  if (type.typeName !== "google.protobuf.Timestamp" && type.typeName !== "google.protobuf.Duration") {
    return undefined;
  }
  const seconds = BigInt(numbers.get(1) ?? 0n);
  // nanos is an int32: the low 32 bits of the varint, as a signed number.
  const nanos = Number(BigInt.asIntN(32, BigInt(numbers.get(2) ?? 0n)));
  if (type.typeName === "google.protobuf.Timestamp") {
    if (seconds < TIMESTAMP_SECONDS.min || seconds > TIMESTAMP_SECONDS.max) {
      return `${path} is out of range: a timestamp must lie between 0001-01-01 and 9999-12-31`;
    }
    if (nanos < 0 || nanos > MAX_NANOS) return `${path}.nanos must be 0..${MAX_NANOS}, got ${nanos}`;
    return undefined;
  }
  if (seconds < -DURATION_SECONDS || seconds > DURATION_SECONDS) {
    return `${path} is out of range: a duration is at most ${DURATION_SECONDS} seconds either way`;
  }
  if (
    nanos < -MAX_NANOS ||
    nanos > MAX_NANOS ||
    (seconds !== 0n && nanos !== 0 && seconds < 0n !== nanos < 0)
  ) {
    return `${path}.nanos must be -${MAX_NANOS}..${MAX_NANOS} with the sign of seconds, got ${nanos}`;
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
