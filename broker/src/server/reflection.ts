// Server reflection fed with the descriptors `buf build` wrote (broker/descriptors/*.binpb: our
// API, and the health service's schema as grpc-health-check ships it), not with proto-loader's
// re-encoded ones, so that `buf curl` and grpcurl resolve every service exactly as defined.
// @grpc/reflection reads only `fileDescriptorProtos` from the package definition it is given.
import { readFileSync } from "node:fs";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { Server } from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";

const DESCRIPTOR_SETS = ["pgmesh.binpb", "health.binpb"];

export function addReflection(server: Server): void {
  const files = DESCRIPTOR_SETS.flatMap((name) => {
    const set = fromBinary(
      FileDescriptorSetSchema,
      readFileSync(new URL(`../../descriptors/${name}`, import.meta.url)),
    );
    return set.file.map((file) => toBinary(FileDescriptorProtoSchema, file));
  });
  const definition = { "pgmesh.v1": { fileDescriptorProtos: files } } as unknown as PackageDefinition;
  new ReflectionService(definition).addToServer(server);
}
