// Payloads as JSON: through the topic's schema (the FileDescriptorSet GetTopicSchema returns), or
// the well-known types a JSON publish sends (google.protobuf.Value and Struct); raw bytes otherwise.
import { createFileRegistry, createRegistry, fromBinary, type Registry, toJson } from "@bufbuild/protobuf";
import {
  type Any,
  anyUnpack,
  FileDescriptorSetSchema,
  file_google_protobuf_struct,
} from "@bufbuild/protobuf/wkt";

export type Decoded =
  | { kind: "json"; typeName: string; json: unknown }
  | { kind: "raw"; typeName: string; bytes: Uint8Array; why: string }
  | { kind: "none" };

/** The types a payload may be decoded as: the topic's schema's, and google.protobuf.Value/Struct. */
export function payloadRegistry(fileDescriptorSet: Uint8Array | undefined): Registry {
  const wellKnown = createRegistry(file_google_protobuf_struct);
  if (!fileDescriptorSet || fileDescriptorSet.length === 0) return createRegistry(wellKnown);
  try {
    return createRegistry(
      createFileRegistry(fromBinary(FileDescriptorSetSchema, fileDescriptorSet)),
      wellKnown,
    );
  } catch {
    return createRegistry(wellKnown);
  }
}

export function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
}

export function decodePayload(data: Any | undefined, registry: Registry): Decoded {
  if (!data || (data.typeUrl === "" && data.value.length === 0)) return { kind: "none" };
  const typeName = typeNameOf(data.typeUrl);
  const desc = registry.getMessage(typeName);
  if (!desc)
    return { kind: "raw", typeName, bytes: data.value, why: "the topic has no schema for this type" };
  try {
    const message = anyUnpack(data, registry);
    if (!message) throw new Error("no message");
    return { kind: "json", typeName, json: toJson(desc, message, { registry }) };
  } catch (error) {
    return {
      kind: "raw",
      typeName,
      bytes: data.value,
      why: `it does not decode as ${typeName}: ${(error as Error).message}`,
    };
  }
}
