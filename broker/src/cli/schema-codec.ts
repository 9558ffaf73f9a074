// The CLI's view of topic schemas: JSON in, Protobuf out for publish, and the reverse for tail and
// dead-letter listings, using the descriptors registered on the topic.
import {
  createFileRegistry,
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonValue,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { PgmeshClient } from "@pgmesh/sdk";

export interface SchemaCodec {
  /** The message types the topic takes. */
  messageTypes: string[];
  message(typeName: string): DescMessage | undefined;
}

/** The topic's schema as a codec, or undefined when the topic has none. */
export async function schemaCodec(client: PgmeshClient, topic: string): Promise<SchemaCodec | undefined> {
  const schema = await client.getTopicSchema(topic);
  if (!schema || schema.messageTypes.length === 0) return undefined;
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, schema.fileDescriptorSet));
  return { messageTypes: schema.messageTypes, message: (name) => registry.getMessage(name) };
}

/** Encodes JSON data as the named (or the only) message type of the schema. */
export function encodeWithSchema(
  codec: SchemaCodec,
  typeName: string,
  data: unknown,
): { typeName: string; bytes: Uint8Array } {
  const name = typeName || (codec.messageTypes.length === 1 ? (codec.messageTypes[0] as string) : "");
  if (!name) throw new Error(`name the event's type: the topic takes ${codec.messageTypes.join(", ")}`);
  const desc = codec.message(name);
  if (!desc || !codec.messageTypes.includes(name)) {
    throw new Error(`the topic does not take ${name}; it takes ${codec.messageTypes.join(", ")}`);
  }
  try {
    return { typeName: name, bytes: toBinary(desc, fromJson(desc, data as JsonValue)) };
  } catch (error) {
    throw new Error(`data does not fit ${name}: ${(error as Error).message}`);
  }
}

/** Renders a payload as JSON when the schema knows its type. */
export function decodeWithSchema(
  codec: SchemaCodec | undefined,
  typeUrl: string,
  bytes: Uint8Array,
): unknown {
  const desc = codec?.message(typeUrl.slice(typeUrl.lastIndexOf("/") + 1));
  if (!desc) return undefined;
  try {
    return toJson(desc, fromBinary(desc, bytes));
  } catch {
    return undefined;
  }
}
