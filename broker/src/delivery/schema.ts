// Topic schemas: the Protobuf message types a topic's payloads must have. Compiled once from the
// uploaded descriptors into a registry; a payload passes when its type URL names an allowed type
// and its bytes decode as that type.
import { createFileRegistry, type DescMessage, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "./errors.ts";

export interface CompiledSchema {
  messageTypes: string[];
  /** Why the payload is refused, or undefined when it passes. */
  check(dataTypeUrl: string, data: Uint8Array): string | undefined;
  message(typeName: string): DescMessage | undefined;
}

export function compileSchema(fileDescriptorSet: Uint8Array, messageTypes: string[]): CompiledSchema {
  let registry: ReturnType<typeof createFileRegistry>;
  try {
    registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, fileDescriptorSet));
  } catch (error) {
    throw invalidArgument(
      `file_descriptor_set is not a usable FileDescriptorSet (make it with \`buf build -o schema.binpb\`): ${(error as Error).message}`,
    );
  }
  const messages = new Map<string, DescMessage>();
  for (const name of messageTypes) {
    const desc = registry.getMessage(name);
    if (!desc)
      throw invalidArgument(`message type ${JSON.stringify(name)} is not in the file_descriptor_set`);
    messages.set(name, desc);
  }
  const allowed = [...messages.keys()].join(", ");
  return {
    messageTypes,
    message: (typeName) => messages.get(typeName),
    check(dataTypeUrl, data) {
      if (!dataTypeUrl) return `has no data; the topic takes ${allowed}`;
      const typeName = dataTypeUrl.slice(dataTypeUrl.lastIndexOf("/") + 1);
      const desc = messages.get(typeName);
      if (!desc) return `is ${typeName}; the topic takes ${allowed}`;
      try {
        fromBinary(desc, data);
        return undefined;
      } catch (error) {
        return `does not decode as ${typeName}: ${(error as Error).message}`;
      }
    },
  };
}
